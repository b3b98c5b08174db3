"""The package version, in a module of its own so that renderers and the CLI can read it without importing
the package top (and everything it imports)."""

__version__ = "0.1.0"
