"""Run every case of backcheck.zoo through backcheck and its peers; count how often each one is right.

For each checker and dtype: detection rate on gross and on subtle bugs, false alarms at ordinary points and
exactly at kinks, errors (a checker that crashes on a case: neither pass nor fail) and mean seconds per case.
Prints a table, names every case where backcheck misses a bug or raises a false alarm (with the report), and
writes ``results.json`` (per case, per checker: verdict, seconds, error) and ``RESULTS.md`` next to this file.
The hard classes (``classes.py``: float32-only kernels, ties, tiny elements, masks, generator arguments, jumps,
whole models) get a table of their own, and ``floors.py`` the smallest single-element error each checker finds.

Run:  python benchmarks/bugzoo/run.py [--quick] [--dtype float64|float32|both] [--checkers ...] [--layers ...]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks.bugzoo`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bugzoo import classes, floors  # noqa: E402
from benchmarks.bugzoo.cases import (  # noqa: E402
    FLOAT32_RESOLUTION,
    KINDS,
    QUICK_CLASS_LAYERS,
    QUICK_LAYERS,
    RESOLUTION_FACTOR,
    Case,
    all_names,
    make_cases,
)
from benchmarks.bugzoo.peers import CHECKERS, Checker, clear_memo  # noqa: E402

HERE = Path(__file__).resolve().parent
SCHEMA = "backcheck.bugzoo"
SCHEMA_VERSION = 1
VERDICTS = ("pass", "fail", "error")


# ------------------------------------------------------------------------------------------------ running
def run_case(case: Case, checker: Checker) -> dict[str, Any]:
    """One checker on one case: verdict ('pass'|'fail'|'error'), seconds, error, detail, metric, warnings."""
    error = detail = text = status = None
    metric = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        try:
            outcome = checker.run(case)
        except Exception as exc:  # noqa: BLE001 - a peer crashing on a case is a result, not a crash of ours
            seconds = time.perf_counter() - started
            verdict = "error"
            error = f"{type(exc).__name__}: {exc}".strip()[:400]
        else:
            seconds = outcome.seconds if outcome.seconds is not None else time.perf_counter() - started
            verdict, detail, metric, text = outcome.verdict, outcome.detail, outcome.metric, outcome.text
            status = outcome.status
    seen: list[str] = []
    for w in caught:
        msg = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0][:100]}"
        if msg not in seen:
            seen.append(msg)
    result: dict[str, Any] = {
        "verdict": verdict,
        "seconds": round(seconds, 6),
        "error": error,
        "detail": detail,
        "metric": metric,
        "warnings": seen[:3],
    }
    if status is not None:
        result["status"] = status
    if verdict == "error":
        result["right"] = None
    elif case.kind == "jump" and status is not None:
        result["right"] = status == "inconclusive"  # a checker that can say so must say so at a jump
    else:
        result["right"] = verdict == case.expected
    if text is not None and verdict != case.expected:
        result["report"] = text
    return result


def case_record(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "layer": case.layer.name,
        "family": case.layer.family,
        "group": case.group,
        "dtype": case.dtype,
        "kind": case.kind,
        "bug": case.bug.name if case.bug else None,
        "severity": case.severity,
        "mutates": case.mutates,
        "description": case.bug.description if case.bug else None,
        "recorded_size": case.bug.size if case.bug else None,
        "bug_size": case.bug_size,
        "roundoff": case.roundoff if case.bug is not None else None,
        "above_resolution": case.above_resolution() if case.bug is not None else None,
        "expected": case.expected,
        "results": {},
    }


def run_benchmark(
    cases: Sequence[Case],
    checkers: Sequence[str],
    progress: Callable[[str], None] | None = None,
    floor_layers: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``checkers`` (names from ``peers.CHECKERS``) on ``cases``, and the detection-floor study on
    ``floor_layers`` (none by default); return the results document."""
    started = time.perf_counter()
    chosen = [CHECKERS[name] for name in checkers]
    for setup in {c.setup for c in chosen}:
        setup()
    if cases:  # one untimed call each: imports and first-call initialization are not part of a case's cost
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for checker in chosen:
                try:
                    checker.run(cases[0])
                except Exception:  # noqa: BLE001, S110 - the timed run records it
                    pass
    clear_memo()
    records = []
    groups: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        groups.setdefault((case.dtype, case.layer.name), []).append(case)
    for k, ((dtype, layer), group) in enumerate(groups.items(), 1):
        t0 = time.perf_counter()
        for case in group:
            rec = case_record(case)
            for checker in chosen:
                rec["results"][checker.name] = run_case(case, checker)
            records.append(rec)
        if progress:
            wrong = {
                c.name: sum(1 for r in records[-len(group) :] if r["results"][c.name]["right"] is False) for c in chosen
            }
            note = " ".join(f"{n}:{w}" for n, w in wrong.items() if w)
            progress(
                f"[{k}/{len(groups)}] {dtype} {layer}: {len(group)} cases in {time.perf_counter() - t0:.1f} s"
                + (f"  (wrong verdicts: {note})" if note else "")
            )
    clear_memo()
    results = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "meta": {**environment(), "seeds": sorted({c.seed for c in cases})},
        "checkers": {c.name: c.label for c in chosen},
        "cases": records,
    }
    results["summary"] = summarize(results)
    results["classes"] = classes.summarize_classes(results)
    results["backcheck_problems"] = backcheck_problems(results)
    results["targets"] = targets(results["summary"])
    if floor_layers:
        sharp = "backcheck" in checkers  # the sharp row goes with backcheck's
        chosen_floors = [c for c in floors.FLOOR_CHECKERS if c in checkers or (sharp and c == "backcheck_sharp")]
        results["floors"] = floors.run_floors(floor_layers, chosen_floors, progress)
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 2)
    return results


def environment() -> dict[str, Any]:
    import numpy as np

    import backcheck

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "jax", "scipy"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    try:
        root = Path(backcheck.__file__).resolve().parents[2]
        commit = (
            subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "src"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "backcheck": str(Path(backcheck.__file__).resolve().parent),
        "git_commit": commit,
        "src_dirty": dirty,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "float32_resolution": {"min_bug_size": FLOAT32_RESOLUTION, "times_roundoff": RESOLUTION_FACTOR},
    }


# ------------------------------------------------------------------------------------------------ counting
def _ratio(hits: int, of: int) -> dict[str, Any]:
    return {"count": hits, "of": of, "rate": (hits / of) if of else None}


def _count(rows: list[dict[str, Any]], name: str, select: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """How many of the selected cases ``name`` failed, of those it judged (errors left out)."""
    chosen = [r["results"][name] for r in rows if name in r["results"] and select(r)]
    judged = [x for x in chosen if x["verdict"] != "error"]
    return _ratio(sum(1 for x in judged if x["verdict"] == "fail"), len(judged))


def _is_bug(r: dict[str, Any]) -> bool:
    return r["kind"] == "bug"


SELECTIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "gross": lambda r: _is_bug(r) and r["severity"] == "gross",
    "subtle": lambda r: _is_bug(r) and r["severity"] == "subtle",
    "bugs": _is_bug,
    "above_resolution": lambda r: _is_bug(r) and _above_resolution(r),
    "mutating": lambda r: _is_bug(r) and r["mutates"],
    "false_alarms_ordinary": lambda r: r["kind"] == "correct",
    "false_alarms_kinks": lambda r: r["kind"] == "kink",
    "false_alarms": lambda r: not _is_bug(r),
}


def summarize(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per dtype, per checker: detections, false alarms, errors and mean seconds over the zoo's ``LAYERS``
    (the hard classes are counted by ``classes.summarize_classes``)."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    zoo_cases = [r for r in results["cases"] if r["group"] == "zoo"]
    for dtype in sorted({r["dtype"] for r in zoo_cases}, reverse=True):
        rows = [r for r in zoo_cases if r["dtype"] == dtype]
        summary[dtype] = {}
        for name in results["checkers"]:
            res = [r["results"][name] for r in rows if name in r["results"]]
            summary[dtype][name] = {
                **{key: _count(rows, name, select) for key, select in SELECTIONS.items()},
                "errors": sum(1 for x in res if x["verdict"] == "error"),
                "cases": len(res),
                "seconds_mean": (sum(x["seconds"] for x in res) / len(res)) if res else None,
                "seconds_total": sum(x["seconds"] for x in res),
            }
    return summary


def _above_resolution(record: dict[str, Any]) -> bool:
    return record["above_resolution"] is not False


def backcheck_problems(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every case where backcheck missed a bug or raised a false alarm (or crashed), with why."""
    out = []
    for r in results["cases"]:
        res = r["results"].get("backcheck")
        if res is None or res["right"] is True:
            continue
        if res["verdict"] == "error":
            problem, why = "error", res["error"]
        elif r["kind"] == "jump":
            problem = "pass at a jump" if res["verdict"] == "pass" else "not inconclusive at a jump"
            why = f"correct backward where the forward jumps, judged {res['detail']}"
        elif r["kind"] == "bug":
            size = r["bug_size"]
            problem = "miss"
            noise = f", float32 round-off of the correct gradient {r['roundoff']:.2g}" if r["roundoff"] else ""
            why = (
                f"bug of relative size {size:.3g} ({r['severity']}{noise}"
                + (", mutates its input" if r["mutates"] else "")
                + f"): {r['description']} backcheck said: {res['detail']}"
            )
        else:
            problem = "false alarm" + (" at a kink" if r["kind"] == "kink" else "")
            why = f"correct backward judged {res['detail']}"
        out.append({"id": r["id"], "problem": problem, "why": why, "report": res.get("report")})
    return out


def targets(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The issue's targets, per dtype: every bug (float32: above resolution) caught, zero false alarms,
    and better than every peer on both figures (at least as good on both, strictly better on one)."""
    out: dict[str, Any] = {}
    for dtype, per in summary.items():
        bc = per.get("backcheck")
        if bc is None:
            continue
        bugs = bc["above_resolution"] if dtype == "float32" else bc["bugs"]
        catches_all = bugs["of"] > 0 and bugs["count"] == bugs["of"]
        no_alarms = bc["false_alarms"]["count"] == 0
        beaten, not_beaten = [], []
        for name, s in per.items():
            if name == "backcheck":
                continue
            det_bc, det_p = bc["bugs"]["rate"] or 0.0, s["bugs"]["rate"] or 0.0
            fa_bc, fa_p = bc["false_alarms"]["rate"] or 0.0, s["false_alarms"]["rate"] or 0.0
            if det_bc >= det_p and fa_bc <= fa_p and (det_bc > det_p or fa_bc < fa_p):
                beaten.append(name)
            else:
                not_beaten.append(name)
        out[dtype] = {
            "catches_every_bug": catches_all,
            "zero_false_alarms": no_alarms,
            "beats_every_peer": not not_beaten,
            "peers_beaten": beaten,
            "peers_not_beaten": not_beaten,
            "met": catches_all and no_alarms and not not_beaten,
        }
    return out


# ------------------------------------------------------------------------------------------------ output
COLUMNS = (
    "checker",
    "gross bugs caught",
    "subtle bugs caught",
    "false alarms (ordinary)",
    "false alarms (kinks)",
    "errors",
    "s / case",
    "1-element floor",
)


def _frac(x: dict[str, Any]) -> str:
    if not x["of"]:
        return "-"
    return f"{x['count']}/{x['of']} ({100 * x['rate']:.0f}%)"


def table_rows(results: dict[str, Any], dtype: str) -> list[list[str]]:
    rows = []
    for name, s in results["summary"][dtype].items():
        mean = s["seconds_mean"]
        rows.append(
            [
                results["checkers"][name],
                _frac(s["gross"]),
                _frac(s["subtle"]),
                _frac(s["false_alarms_ordinary"]),
                _frac(s["false_alarms_kinks"]),
                str(s["errors"]),
                "-" if mean is None else (f"{mean:.3f}" if mean >= 1e-3 else f"{mean:.1e}"),
                floors.worst_text(results["floors"], name) if results.get("floors") else "-",
            ]
        )
    return rows


def print_summary(results: dict[str, Any], file: Any = None) -> None:
    file = file or sys.stdout
    for dtype in results["summary"]:
        classes.print_table(f"bug zoo, {dtype}", list(COLUMNS), table_rows(results, dtype), file)
    classes.print_tables(results, file)
    if results.get("floors"):
        print("\n".join(floors.markdown_lines(results["floors"])), file=file)
    for line in target_lines(results):
        print(line, file=file)
    problems = results["backcheck_problems"]
    if "backcheck" in results["checkers"]:
        print(f"\nbackcheck misses and false alarms: {len(problems) or 'none'}", file=file)
        for p in problems:
            print(f"- {p['id']}: {p['problem']}: {p['why']}", file=file)
            if p.get("report"):
                print("    " + "\n    ".join(p["report"].splitlines()[:14]), file=file)
    for line in mutation_lines(results):
        print(line, file=file)
    print(f"\ntotal {results['meta']['total_seconds']:.1f} s", file=file)


def target_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for dtype, t in results["targets"].items():
        what = "every bug above float32's resolution" if dtype == "float32" else "every wrong backward"
        if not t["peers_beaten"] and not t["peers_not_beaten"]:
            peers = "no peers run"
        elif t["beats_every_peer"]:
            peers = "beats every peer"
        else:
            peers = f"does not beat {', '.join(t['peers_not_beaten'])}"
        lines.append(
            f"target {dtype}: {'MET' if t['met'] else 'NOT MET'}: catches {what}: "
            f"{'yes' if t['catches_every_bug'] else 'no'}; zero false alarms: "
            f"{'yes' if t['zero_false_alarms'] else 'no'}; {peers}"
        )
    return lines


def mutation_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for dtype, per in results["summary"].items():
        rows = [r for r in results["cases"] if r["dtype"] == dtype and r["mutates"]]
        if not rows:
            continue
        parts = []
        for name in per:
            m = per[name]["mutating"]
            errors = sum(1 for r in rows if r["results"].get(name, {}).get("verdict") == "error")
            parts.append(
                f"{results['checkers'][name]} {m['count']}/{m['of']}" + (f" ({errors} errors)" if errors else "")
            )
        lines.append(f"bugs that also write into their inputs ({dtype}), caught: " + ", ".join(parts))
    return lines


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    n_layers = len({r["layer"] for r in results["cases"] if r["group"] == "zoo"})
    lines = [
        "### Verdict quality against every peer (the bug zoo benchmark)",
        "",
        f"Every case of `backcheck.zoo` ({n_layers} layers: each correct backward at ordinary inputs and "
        "exactly at kinks and ties, and every wrong backward), seed "
        f"{_seed(results)}, in each dtype, checked by each checker with its defaults. "
        "*Caught* counts wrong backward passes that fail, *false alarms* correct ones that fail; "
        "*errors* are cases a checker could not run (neither pass nor fail). "
        f"`python benchmarks/bugzoo/run.py` reproduces it ({meta['total_seconds']:.0f} s "
        f"on {meta['cpus']} cores; "
        f"backcheck {meta['git_commit'] or '?'}{' + local changes' if meta['src_dirty'] else ''}, "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
        + ").",
        "",
    ]
    for dtype in results["summary"]:
        lines += [
            f"**{dtype}**",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(results, dtype)]
        lines.append("")
    lines += [f"- {results['checkers'][n]}: {CHECKERS[n].how}." for n in results["checkers"] if n in CHECKERS]
    lines.append("")
    lines += classes.markdown_lines(results)
    if results.get("floors"):
        lines += [*floors.markdown_lines(results["floors"]), ""]
    lines += [f"- {line}" for line in target_lines(results)]
    lines += [f"- {line}" for line in mutation_lines(results)]
    problems = results["backcheck_problems"]
    if "backcheck" in results["checkers"]:
        lines += ["", f"backcheck's misses and false alarms: {len(problems) or 'none'}."]
        lines += [f"- `{p['id']}`: {p['problem']}: {p['why']}" for p in problems]
    subtle = [r for r in results["cases"] if r["severity"] == "subtle"]
    if subtle:
        names = list(results["checkers"])
        lines += [
            "",
            "<details><summary>Subtle bugs: who catches them (✓ caught, · missed, E error)</summary>",
            "",
            "| case | size | " + " | ".join(results["checkers"][n] for n in names) + " |",
            "|---|---:|" + "|".join([":-:"] * len(names)) + "|",
        ]
        mark = {"fail": "✓", "pass": "·", "error": "E"}
        for r in subtle:
            lines.append(
                f"| `{r['id']}` | {r['bug_size']:.1e} | "
                + " | ".join(mark[r["results"][n]["verdict"]] for n in names)
                + " |"
            )
        lines += ["", "</details>"]
    kinks = [r for r in results["cases"] if r["kind"] == "kink"]
    if kinks:
        names = list(results["checkers"])
        lines += [
            "",
            "<details><summary>Correct backward passes at kinks and ties: who raises a false alarm "
            "(✗ false alarm, · pass, E error)</summary>",
            "",
            "| case | " + " | ".join(results["checkers"][n] for n in names) + " |",
            "|---|" + "|".join([":-:"] * len(names)) + "|",
        ]
        mark = {"fail": "✗", "pass": "·", "error": "E"}
        for r in kinks:
            lines.append(f"| `{r['id']}` | " + " | ".join(mark[r["results"][n]["verdict"]] for n in names) + " |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _seed(results: dict[str, Any]) -> str:
    return ", ".join(str(s) for s in results["meta"].get("seeds", []))


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "RESULTS.md"
    json_path.write_text(dump_json(results))
    md_path.write_text(markdown(results))
    return json_path, md_path


def dump_json(results: dict[str, Any]) -> str:
    """The results as JSON: indented, except one line per case (diffable, a third of the size)."""
    head = {k: v for k, v in results.items() if k != "cases"}
    body = ",\n".join("  " + json.dumps(c, default=_json_default, ensure_ascii=False) for c in results["cases"])
    text = json.dumps(head, indent=1, default=_json_default, ensure_ascii=False)
    return text[:-1].rstrip() + ',\n "cases": [\n' + body + "\n ]\n}\n"


def _json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


# ------------------------------------------------------------------------------------------------ CLI
def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=f"only {len(QUICK_LAYERS) + len(QUICK_CLASS_LAYERS)} layers "
                   f"({', '.join(QUICK_LAYERS + QUICK_CLASS_LAYERS)}) and one layer for the floors")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument(
        "--checkers",
        nargs="+",
        choices=list(CHECKERS),
        default=list(CHECKERS),
        metavar="CHECKER",
        help=f"default: all of {', '.join(CHECKERS)}",
    )
    p.add_argument("--layers", nargs="+", metavar="LAYER", help="zoo layer or model names (default: all)")
    p.add_argument("--no-floors", action="store_true", help="skip the smallest-single-element-error study")
    p.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the zoo's inputs (default: 0)")
    p.add_argument("--out-dir", type=Path, default=HERE, help="where results.json and RESULTS.md go")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    layers = args.layers or (list(QUICK_LAYERS + QUICK_CLASS_LAYERS) if args.quick else all_names())
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    cases = make_cases(layers, dtypes, seeds=args.seeds, kinds=args.kinds)
    progress = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    floor_layers = () if args.no_floors else (floors.QUICK_FLOOR_LAYERS if args.quick else floors.FLOOR_LAYERS)
    results = run_benchmark(cases, args.checkers, progress, floor_layers)
    results["meta"]["argv"] = list(sys.argv[1:] if argv is None else argv)
    print_summary(results)
    if not args.no_write:
        paths = write(results, args.out_dir)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
