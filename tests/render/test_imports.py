"""Where the renderers sit: report.py renders through render/ only when asked, and the renderers (and the CLI)
take the version from backcheck._version, not from the package top."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import backcheck
import backcheck._version
import backcheck.cases
import backcheck.report

SRC = Path(backcheck.__file__).resolve().parent


def _module_level_imports(path: Path) -> list[str]:
    """The modules imported by statements at the top level of ``path`` (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def _all_imports(path: Path) -> list[ast.ImportFrom]:
    return [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.ImportFrom)]


def test_report_does_not_import_a_renderer_at_module_level() -> None:
    mods = _module_level_imports(Path(backcheck.report.__file__))
    assert not [m for m in mods if m.startswith("backcheck.render")], mods


def test_renderers_and_cli_read_the_version_from_its_own_module() -> None:
    files = [*sorted((SRC / "render").glob("*.py")), SRC / "cli.py"]
    for path in files:
        for node in _all_imports(path):
            names = [a.name for a in node.names]
            assert not (node.module == "backcheck" and "__version__" in names), f"{path.name} imports the top"
    assert backcheck.__version__ is backcheck._version.__version__


def test_version_matches_the_installed_metadata() -> None:
    assert backcheck.__version__ == importlib.metadata.version("backcheck")


def test_no_test_only_code_in_the_package() -> None:
    assert not (SRC / "render" / "_browser.py").exists()
    assert not hasattr(backcheck.cases, "select")
