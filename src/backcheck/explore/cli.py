"""``backcheck explore``: search the input spaces of layers for a point where their backward pass fails.

``backcheck explore FILE.py [FILE.py ...]``
    Import the files and explore every module-level :func:`backcheck.explore.target` (``-k`` selects).
``backcheck explore --zoo NAME [--bug BUG]``
    Explore a layer of :mod:`backcheck.zoo` from its input space alone (its correct backward, or a bug).

Exit status: 0 when no point fails, 1 when one does (or, with ``--strict``, a point is inconclusive),
2 on a usage error or an error raised by the user's code. ``--test PATH`` writes the failing cases as
pytest tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def add_parser(sub: Any) -> None:
    """Register the ``explore`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "explore", help="search layers' input spaces for the smallest failing point",
        description="Explore every module-level backcheck.explore.target(...) of FILEs (or a zoo layer) with "
        "Hypothesis; print the smallest failing case as a pytest test. Exit status 0: no failing point; 1: a "
        "failing point; 2: usage error or an exception in your code.",
    )
    p.add_argument("files", nargs="*", metavar="FILE.py", help="Python files defining targets")
    p.add_argument("--zoo", metavar="NAME", help="explore the backcheck.zoo layer NAME instead of files")
    p.add_argument("--bug", metavar="BUG", help="with --zoo: explore this wrong backward of the layer")
    p.add_argument("-k", dest="patterns", action="append", metavar="PATTERN",
                   help="explore only targets whose name contains PATTERN (or matches it as a glob)")
    p.add_argument("--max-points", type=int, metavar="N", help="points to check (default 100)")
    p.add_argument("--max-evals", type=int, metavar="N", help="stop after N evaluations of the forward pass")
    p.add_argument("--seconds", type=float, metavar="S", help="stop the search after S seconds")
    p.add_argument("--seed", type=int, help="seed of the search (default 0)")
    p.add_argument("--no-shrink", action="store_true", help="report the first failing point as found")
    p.add_argument("--strict", action="store_true", help="exit 1 on inconclusive points too")
    p.add_argument("--test", metavar="PATH", help="write the failing cases as pytest tests to PATH")
    p.add_argument("--list", action="store_true", help="list the targets and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="one line per target, no tables")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in (("max_points", args.max_points), ("max_evals", args.max_evals),
                       ("seconds", args.seconds), ("seed", args.seed)):
        if value is not None:
            options[key] = value
    if args.no_shrink:
        options["shrink"] = False
    return options


def _targets(args: argparse.Namespace, err: TextIO) -> list[tuple[str, Any]] | None:
    from backcheck.cases import load_file, matches
    from backcheck.cli import brief_traceback
    from backcheck.explore.target import Target, collect

    if args.zoo:
        from backcheck.zoo import get
        from backcheck.zoo.spaces import space

        try:
            layer, described = get(args.zoo), space(args.zoo)
        except KeyError as exc:
            err.write(f"backcheck: {exc.args[0]}\n")
            return None
        bugs = {b.name: b for b in layer.bugs}
        if args.bug is not None and args.bug not in bugs:
            err.write(f"backcheck: zoo layer {args.zoo!r} has no bug {args.bug!r}; its bugs: {', '.join(bugs)}\n")
            return None
        backward = bugs[args.bug].backward if args.bug else layer.backward
        inputs = described.pop("inputs")
        return [(f"{args.zoo} / {args.bug or 'correct'}", Target(layer.forward, backward, inputs, described))]
    found: list[tuple[str, Any]] = []
    files = [str(Path(f).resolve()) for f in args.files]
    for f in args.files:
        if not Path(f).is_file():
            err.write(f"backcheck: no such file: {f}\n")
            return None
        try:
            module = load_file(Path(f))
        except Exception as exc:  # any error importing the user's file is reported
            err.write(f"backcheck: importing {f} failed.\n{brief_traceback(exc, files)}")
            return None
        prefix = f"{Path(f).name}::" if len(args.files) > 1 else ""
        found.extend((prefix + name, t) for name, t in collect(module))
    patterns = args.patterns or []
    chosen = [(n, t) for n, t in found if not patterns or any(matches(n, p) for p in patterns)]
    if not chosen:
        what = f"no target matches -k {' -k '.join(patterns)}" if found else "no targets"
        err.write(f"backcheck: {what} in {', '.join(args.files)}.\n"
                  "Hint: define `name = backcheck.explore.target(forward, backward, inputs={...})` at module "
                  "level.\n")
        return None
    return chosen


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``backcheck explore``: run the targets, print their results, return the exit status."""
    from backcheck.errors import BackcheckError

    if bool(args.files) == bool(args.zoo):
        err.write("backcheck explore: give FILE.py arguments or --zoo NAME (one of the two).\n")
        return EXIT_ERROR
    targets = _targets(args, err)
    if targets is None:
        return EXIT_ERROR
    if args.list:
        for name, _ in targets:
            out.write(name + "\n")
        return EXIT_OK
    options, status, tests = _options(args), EXIT_OK, []
    for name, t in targets:
        try:
            result = t.run(**{"title": name, **options})
        except BackcheckError as exc:
            err.write(f"backcheck: {name}: {exc}\n")
            return EXIT_ERROR
        out.write((result.summary() if args.quiet else str(result)) + "\n\n")
        if result.status == "fail" or (args.strict and result.status == "inconclusive"):
            status = EXIT_FAIL
        if result.test:
            tests.append(result.test)
    if args.test and tests:
        Path(args.test).write_text("\n\n".join(tests))
        out.write(f"wrote {len(tests)} test(s) to {args.test}\n")
    return status
