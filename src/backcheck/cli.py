"""The ``backcheck`` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backcheck", description="Trustworthy gradient checking.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="a short tour: a correct layer, a buggy one, and one at a ReLU kink")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from backcheck.demo import main as demo

        return demo()
    parser.print_help(sys.stderr)
    return 2
