"""Renderers turn a Report into text, HTML or JSON. They never compute a verdict."""
