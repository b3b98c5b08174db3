"""The ``backcheck`` command (also ``python -m backcheck``).

``backcheck demo``
    A short tour: a correct layer, a buggy one, and one at a ReLU kink.
``backcheck check FILE.py [FILE.py ...]``
    Import the files, find the functions decorated with ``@backcheck.case`` and check each one
    (see :mod:`backcheck.cases`); write ``--html`` and ``--json`` reports if asked.

Exit status: 0 when every check passes, 1 when one fails (a mismatch, an input written in place, or an
inconclusive verdict), 2 on a usage error (a report that cannot be written among them) or an error raised by the
user's code, or a case file that calls ``sys.exit()`` (which take precedence).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import sysconfig
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from backcheck.cases import Case
    from backcheck.report import Report

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
#: Frames of the user's code shown for an error.
FRAMES = 3


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (e.g. --samples 100)")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer (e.g. --seed 0)")
    return value


#: ``--json -`` writes the JSON report to standard output (and the human-readable one to standard error).
STDOUT = "-"


def _json_output(text: str) -> str:
    """:func:`_output`, or ``-`` for standard output."""
    return text if text == STDOUT else _output(text)


def _output(text: str) -> str:
    """A report path whose folder exists (the folder is never created behind the user's back)."""
    if text == STDOUT:
        raise argparse.ArgumentTypeError("'-' (standard output) is for --json only; give a file name")
    path = Path(text)
    try:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name in it, e.g. {path / 'report'}")
        folder = path.parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(
                f"the folder {folder} does not exist (create it first: mkdir -p {folder})"
            )
    except OSError as exc:  # the system cannot even look at it (a name too long)
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror or exc}") from None
    return text


def _parser() -> argparse.ArgumentParser:
    from backcheck._version import __version__
    from backcheck.strategies import STRATEGIES

    parser = argparse.ArgumentParser(prog="backcheck", description="Trustworthy gradient checking.")
    parser.add_argument("--version", action="version", version=f"backcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="a short tour: a correct layer, a buggy one, and one at a ReLU kink")
    from backcheck.explore.cli import add_parser as add_explore

    add_explore(sub)
    chk = sub.add_parser(
        "check", help="check the @backcheck.case functions of Python files",
        description="Import FILEs, find the functions decorated with @backcheck.case and check each. Exit "
        "status 0: all pass; 1: a check failed; 2: usage error or an exception in your code.",
    )
    chk.add_argument("files", nargs="+", metavar="FILE.py", help="Python files defining cases")
    chk.add_argument("-k", dest="patterns", action="append", metavar="PATTERN",
                     help="run only cases whose name contains PATTERN (or matches it as a glob); repeatable")
    chk.add_argument("--html", metavar="PATH", type=_output,
                     help="write an HTML report (with error-versus-step curves); its folder must exist")
    chk.add_argument("--json", metavar="PATH", type=_json_output,
                     help="write a JSON report (schema: docs/report-schema.json); its folder must exist; "
                          "'-' writes it to standard output (the text report then goes to standard error)")
    chk.add_argument("--strategy", choices=STRATEGIES, help="override the strategy of every case")
    chk.add_argument("--samples", type=_positive_int, metavar="N",
                     help="elements to sample with --strategy sparse")
    chk.add_argument("--seed", type=_seed, help="override the seed of every case")
    chk.add_argument("--dtype", choices=("float32", "float64"),
                     help="cast the float inputs of every case to this dtype before checking")
    chk.add_argument("--list", action="store_true", help="list the cases and exit")
    chk.add_argument("-q", "--quiet", action="store_true", help="print one line per case, not the tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error, 0 for --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    if args.command == "demo":
        from backcheck.demo import main as demo

        return demo()
    if args.command == "explore":
        from backcheck.explore.cli import run as run_explore

        return run_explore(args, sys.stdout, sys.stderr)
    if args.command == "check":
        if args.json != STDOUT:
            return run_check(args, sys.stdout, sys.stderr)
        # with the JSON report on standard output, the human-readable one goes to standard error, and so does
        # whatever the case files print (it would come before the JSON and break it)
        real = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            return run_check(args, sys.stderr, sys.stderr, real)
    parser.print_help(sys.stderr)
    return EXIT_ERROR


def _not_yours() -> tuple[str, ...]:
    """Folders whose frames are not the user's code: backcheck, the standard library, installed packages."""
    paths = sysconfig.get_paths()
    folders = {Path(__file__).resolve().parent, *(Path(paths[k]).resolve() for k in ("stdlib", "purelib", "platlib"))}
    return tuple(str(f) for f in folders)


def _yours(filename: str, files: set[str], others: tuple[str, ...]) -> bool:
    """True for a frame of the user's code: a file they named, or any file outside ``others``."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = str(Path(filename).resolve())
    return path in files or not any(path.startswith(folder + os.sep) for folder in others)


def brief_traceback(exc: BaseException, user_files: Sequence[str | os.PathLike[str]],
                    frames: int = FRAMES) -> str:
    """The last ``frames`` frames of the user's code and the exception (the user's own, if wrapped).

    The user's code is the files they named and any module of theirs those import; frames of backcheck, of
    the standard library (importlib, when a case file is imported) and of installed packages are left out.
    A syntax error names the user's file and line itself.
    """
    files = {str(Path(f).resolve()) for f in user_files}
    shown: BaseException = exc
    if exc.__cause__ is not None:
        from backcheck.errors import UserFunctionError

        if isinstance(exc, UserFunctionError):
            shown = exc.__cause__
    stack = traceback.extract_tb(shown.__traceback__)
    others = _not_yours()
    mine = [fr for fr in stack if _yours(fr.filename, files, others)]
    header = "Traceback (last frames of your code):\n"
    if not mine and not isinstance(shown, SyntaxError):  # raised inside backcheck or a library
        mine, header = list(stack), "Traceback (last frames):\n"
    picked = traceback.StackSummary.from_list(mine[-frames:])
    text = header if picked or isinstance(shown, SyntaxError) else ""
    text += "".join(picked.format())
    text += "".join(traceback.format_exception_only(type(shown), shown))
    if shown is not exc:
        text += f"(backcheck: {exc})\n"
    return text


def _print(report: Report, out: TextIO) -> None:
    from backcheck.render.terminal import print_report

    print_report(report, file=out)


def _write_reports(
    args: argparse.Namespace, reports: list[Report], labels: list[str], err: TextIO, json_out: TextIO | None = None
) -> bool:
    """Write the --json and --html reports; False, with the reason on ``err``, when one cannot be written."""
    from backcheck.errors import BadInputError
    from backcheck.render.html import write_html
    from backcheck.render.json import to_json, write_json

    try:
        if args.json == STDOUT:
            (json_out or sys.stdout).write(to_json(reports, labels=labels) + "\n")
        elif args.json:
            write_json(reports, args.json, labels=labels)
        if args.html:
            write_html(reports, args.html, title=f"backcheck: {', '.join(Path(f).name for f in args.files)}",
                       labels=labels)
    except BadInputError as exc:
        err.write(f"backcheck: {exc}\n")
        return False
    return True


def run_check(args: argparse.Namespace, out: TextIO, err: TextIO, json_out: TextIO | None = None) -> int:
    """``backcheck check``: load, select and run the cases; print, write reports, return the exit status
    (``json_out``: where ``--json -`` goes, standard output as it was before the cases could print)."""
    import numpy as np

    from backcheck.cases import CaseError, collect, load_file, matches, run_case
    from backcheck.errors import BadInputError, GradientMismatch

    found: list[tuple[str, Case]] = []
    files = [str(Path(f).resolve()) for f in args.files]
    for f in args.files:
        path = Path(f)
        if not path.is_file():
            if not path.exists():
                err.write(f"backcheck: no such file: {f}\n")
            elif path.is_dir():
                err.write(f"backcheck: {f} is a folder; give the Python files in it.\n")
            else:
                err.write(f"backcheck: {f} is not a regular file; give a Python file of @backcheck.case functions.\n")
            return EXIT_ERROR
        try:
            module = load_file(path)
        except Exception as exc:  # any error importing the user's file is reported
            err.write(f"backcheck: importing {f} failed.\n{brief_traceback(exc, files)}")
            return EXIT_ERROR
        except SystemExit as exc:  # a script's sys.exit() at import: nothing was checked, whatever its code
            err.write(f"backcheck: importing {f} called sys.exit({exc.code!r}); no case was checked.\n"
                      "Hint: guard the file's script part with `if __name__ == '__main__':`.\n")
            return EXIT_ERROR
        # (the file's name, or the path as given where two files share a name: stuA/cases.py, stuB/cases.py)
        shared = sum(Path(g).name == path.name for g in args.files) > 1
        prefix = (f"{f}::" if shared else f"{path.name}::") if len(args.files) > 1 else ""
        found.extend((prefix + c.name, c) for c in collect(module))
    if not found:
        err.write(f"backcheck: no @backcheck.case functions in {', '.join(args.files)}.\n"
                  "Hint: decorate a function with @backcheck.case; see `python -c 'import backcheck.cases; "
                  "help(backcheck.cases)'`.\n")
        return EXIT_ERROR
    patterns = args.patterns or []
    chosen = [(label, c) for label, c in found
              if not patterns or any(matches(label, p) or matches(c.name, p) for p in patterns)]
    if not chosen:
        err.write(f"backcheck: no case matches -k {' -k '.join(args.patterns)}; the cases are "
                  f"{', '.join(label for label, _ in found)}.\n")
        return EXIT_ERROR
    if args.list:
        for label, c in chosen:
            out.write(f"{label}  ({c.where})\n")
        return EXIT_OK
    dtype = np.dtype(args.dtype) if args.dtype else None
    curves = True if args.html else None
    reports: list[Report] = []
    labels: list[str] = []
    errors = failures = unsure = 0
    for label, c in chosen:
        try:
            report = run_case(c, strategy=args.strategy, samples=args.samples, dtype=dtype, seed=args.seed,
                              curves=curves)
        except GradientMismatch as exc:  # the case called assert_layer / assert_grad itself
            report = exc.report
        except (CaseError, BadInputError) as exc:
            errors += 1
            err.write(f"\nERROR {label}: {exc}\n")
            if not isinstance(exc, CaseError) and exc.__cause__ is not None:
                err.write(brief_traceback(exc, files))
            continue
        except (Exception, SystemExit) as exc:  # the user's code raised (or called sys.exit())
            errors += 1
            err.write(f"\nERROR {label}: {type(exc).__name__} raised while running the case.\n")
            err.write(brief_traceback(exc, files))
            continue
        reports.append(report)
        labels.append(label)
        if not report.ok:
            failures += report.status == "fail"
            unsure += report.status != "fail"
        if args.quiet:
            out.write(f"{report.status.upper():>12}  {label}\n")
        else:
            out.write(f"\n{label}\n")
            _print(report, out)
    written = _write_reports(args, reports, labels, err, json_out)
    passed = len(reports) - failures - unsure
    inconclusive = f", {unsure} inconclusive" if unsure else ""
    summary = f"{len(chosen)} case(s): {passed} passed, {failures} failed{inconclusive}, {errors} error(s)"
    out.write(f"\n{summary}\n")
    for what, path in (("JSON", args.json), ("HTML", args.html)):
        if path and path != STDOUT and written:
            out.write(f"{what} report: {path}\n")
    if errors or not written:
        return EXIT_ERROR
    return EXIT_FAIL if failures or unsure else EXIT_OK  # (inconclusive vouches for nothing: not a pass)
