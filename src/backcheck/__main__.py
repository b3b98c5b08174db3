"""``python -m backcheck`` is the command-line interface."""

from backcheck.cli import main

raise SystemExit(main())
