"""The shape of backcheck.nn's code: imports point one way, no silenced linters, small modules and functions;
and every public import path of the package keeps working."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import backcheck.nn
from backcheck import nn

ROOT = Path(backcheck.nn.__file__).parent
SOURCES = sorted(ROOT.rglob("*.py"))
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100  # body lines, docstring excluded
MAX_PARAMS = 8  # of an internal function
PUBLIC_WIDE = {"fit"}  # public API whose keyword options are documented one by one


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path) -> set[str]:
    """backcheck.nn modules imported when ``path`` is imported (imports in functions and TYPE_CHECKING excluded)."""
    names = {_module_name(p) for p in SOURCES}
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in names}
    found.discard(_module_name(path))
    return found


def test_module_level_imports_form_no_cycle():
    graph = {_module_name(p): _module_level_imports(p) for p in SOURCES}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    # the package imports its parts, and no part imports the package back
    assert all("backcheck.nn" not in deps for name, deps in graph.items() if name != "backcheck.nn")
    assert "backcheck.nn.tensor" in graph["backcheck.nn.ops.elementwise"]
    assert not graph["backcheck.nn.tensor"] & {n for n in graph if n.startswith("backcheck.nn.ops")}


def test_no_silenced_linter_and_small_modules_and_functions():
    problems = []
    for path in SOURCES:
        text = path.read_text()
        rel = path.relative_to(ROOT)
        problems += [f"{rel}:{i + 1} silences a linter" for i, line in enumerate(text.splitlines()) if "noqa" in line]
        if text.count("\n") > MAX_MODULE_LINES:
            problems.append(f"{rel} has {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
            start = body[0].end_lineno + 1 if has_doc and len(body) > 1 else body[0].lineno
            if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                problems.append(f"{rel}:{node.name} is {node.end_lineno - start + 1} lines long")
            a = node.args
            n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
            n -= 1 if a.args and a.args[0].arg in ("self", "cls") else 0
            if n > MAX_PARAMS and node.name not in PUBLIC_WIDE:
                problems.append(f"{rel}:{node.name} takes {n} parameters")
    assert not problems, "\n".join(problems)


OLD_PATHS = {
    "backcheck.nn.modules": [
        "Parameter", "Module", "Capture", "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
        "Dropout", "Embedding", "Sequential", "Flatten", "Identity", "ReLU", "Tanh", "Sigmoid", "GELU",
        "LeakyReLU", "Softmax", "MaxPool2d", "AvgPool2d", "MLP", "SmallCNN", "manual_seed",
    ],
    "backcheck.nn.tensor": [
        "Tensor", "Function", "Context", "no_grad", "enable_grad", "is_grad_enabled", "as_tensor", "tensor",
        "default_dtype", "set_default_dtype",
    ],
    "backcheck.nn.ops.nnfunc": ["softmax", "log_softmax", "cross_entropy", "mse_loss", "dropout", "embedding"],
    "backcheck.nn.functional": ["batch_norm", "layer_norm", "conv2d", "linear", "relu", "cat"],
    "backcheck.nn.losses": ["cross_entropy", "nll_loss", "CrossEntropyLoss", "MSELoss"],
    "backcheck.nn.train": ["History", "fit", "evaluate", "parse_check"],
}


@pytest.mark.parametrize("module", sorted(OLD_PATHS))
def test_public_import_paths_keep_working(module):
    mod = importlib.import_module(module)
    for name in OLD_PATHS[module]:
        obj = getattr(mod, name)
        if name in nn.__all__ and module != "backcheck.nn.losses":
            assert obj is getattr(nn, name), f"{module}.{name} is not backcheck.nn.{name}"


def test_every_name_the_package_exports_exists_and_the_layers_are_one_class_each():
    missing = [name for name in nn.__all__ if not hasattr(nn, name)]
    assert not missing
    from backcheck.nn import layers, models, module, modules

    assert nn.Linear is modules.Linear is layers.Linear and nn.MLP is models.MLP and nn.Module is module.Module
    assert nn.Tensor(1.0).__add__(1.0).item() == 2.0  # operators reach the ops lazily


def test_tensor_reaches_only_the_op_families():
    from backcheck.nn import tensor

    assert tensor._ops.elementwise is importlib.import_module("backcheck.nn.ops.elementwise")
    assert not hasattr(tensor._ops, "__wrapped__")  # probed by doctest and inspect: not an op family
