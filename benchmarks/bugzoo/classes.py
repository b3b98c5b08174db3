"""The hard classes of the bug zoo, counted beside the main table: float32-only kernels, tie groups, tiny
elements, masked inputs, random-seed arguments, jumps and whole models.

Per dtype and checker: bugs caught (float32 kernels by size: about 1e-2, 1e-3 and 1e-4), false alarms on the
correct backwards, and *silent passes at jumps*: a correct backward exactly where the forward jumps, which no
checker can vouch for (backcheck should say inconclusive; a pass there vouches for nothing). Errors (a checker
that cannot run a case, e.g. a peer handed a random Generator) are neither and are counted apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CLASS_GROUPS = ("float32", "ties", "tiny", "masked", "generator", "jumps", "models")


def size_bucket(size: float | None) -> str:
    """A float32 kernel bug's size class: '1e-2', '1e-3' or '1e-4'."""
    if size is None or size >= 5e-3:
        return "1e-2"
    return "1e-3" if size >= 5e-4 else "1e-4"


def _bug(group: str, bucket: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def select(r: dict[str, Any]) -> bool:
        if r["group"] != group or r["kind"] != "bug":
            return False
        return bucket is None or size_bucket(r.get("recorded_size")) == bucket

    return select


def _correct(groups: tuple[str, ...]) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["group"] in groups and r["kind"] in ("correct", "kink")


#: column -> (selection, what is counted: 'fail' for catches and false alarms, 'pass' for silent passes)
COLUMNS: dict[str, tuple[Callable[[dict[str, Any]], bool], str]] = {
    "float32 1e-2": (_bug("float32", "1e-2"), "fail"),
    "float32 1e-3": (_bug("float32", "1e-3"), "fail"),
    "float32 1e-4": (_bug("float32", "1e-4"), "fail"),
    "float32 false alarms": (_correct(("float32",)), "fail"),
    "ties": (_bug("ties"), "fail"),
    "tiny": (_bug("tiny"), "fail"),
    "masked": (_bug("masked"), "fail"),
    "generator": (_bug("generator"), "fail"),
    "jump layers' bugs": (_bug("jumps"), "fail"),
    "false alarms (these)": (_correct(("ties", "tiny", "masked", "generator", "jumps")), "fail"),
    "passes at jumps": (lambda r: r["kind"] == "jump", "pass"),
    "models' bugs": (_bug("models"), "fail"),
    "models' false alarms": (_correct(("models",)), "fail"),
}


def summarize_classes(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per dtype, per checker, per column: {'count', 'of'} over the cases judged, and the errors."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    rows = [r for r in results["cases"] if r["group"] in CLASS_GROUPS]
    for dtype in sorted({r["dtype"] for r in rows}, reverse=True):
        mine = [r for r in rows if r["dtype"] == dtype]
        out[dtype] = {}
        for name in results["checkers"]:
            cells: dict[str, Any] = {}
            for column, (select, counted) in COLUMNS.items():
                judged = [r["results"][name] for r in mine if select(r) and name in r["results"]]
                judged = [x for x in judged if x["verdict"] != "error"]
                cells[column] = {"count": sum(x["verdict"] == counted for x in judged), "of": len(judged)}
            cells["errors"] = sum(1 for r in mine if r["results"].get(name, {}).get("verdict") == "error")
            out[dtype][name] = cells
    return out


def table(results: dict[str, Any], dtype: str) -> tuple[list[str], list[list[str]]]:
    """The columns and rows of the classes table for one dtype."""
    columns = ["checker", *COLUMNS, "errors"]
    rows = []
    for name, cells in results["classes"][dtype].items():
        row = [results["checkers"][name]]
        row += [f"{c['count']}/{c['of']}" if c["of"] else "-" for c in (cells[k] for k in COLUMNS)]
        rows.append(row + [str(cells["errors"])])
    return columns, rows


def markdown_lines(results: dict[str, Any]) -> list[str]:
    if not results.get("classes"):
        return []
    n_layers = len({r["layer"] for r in results["cases"] if r["group"] in CLASS_GROUPS})
    lines = [
        f"**Hard classes** ({n_layers} layers and models beside the zoo: `backcheck.zoo.FLOAT32_LAYERS`, "
        "`HABIT_LAYERS`, `JUMP_LAYERS`, `MODELS`). Bugs caught, false alarms on correct backwards, and passes "
        "exactly at a jump (a pass there vouches for nothing).",
        "",
    ]
    for dtype in results["classes"]:
        columns, rows = table(results, dtype)
        lines += [f"*{dtype}*", "", "| " + " | ".join(columns) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return lines


def print_tables(results: dict[str, Any], file: Any) -> None:
    for dtype in results.get("classes", {}):
        columns, rows = table(results, dtype)
        print_table(f"hard classes, {dtype}", columns, rows, file)


def print_table(title: str, columns: list[str], rows: list[list[str]], file: Any) -> None:
    """A table on the terminal: rich when it is installed, plain columns otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(r[k]) for r in rows)) for k, c in enumerate(columns)]
        print(title, file=file)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=file)
        for row in rows:
            cells = zip(row, widths, strict=True)
            print("  ".join(v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in enumerate(cells)), file=file)
        print(file=file)
        return
    t = Table(title=title)
    for k, col in enumerate(columns):
        t.add_column(col, justify="left" if k == 0 else "right")
    for row in rows:
        t.add_row(*row)
    Console(file=file, width=max(140, 12 * len(columns))).print(t)
