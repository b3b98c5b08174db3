"""Nothing but typed errors leaves a check or a renderer: no numpy RuntimeWarning for values near float64's edges
(a test suite under -W error would fail on them), no raw TypeError / ValueError / OSError / KeyError for junk
arguments, and a report whose details raised once is not broken for good."""

from __future__ import annotations

import io
import itertools
import json
import warnings

import numpy as np
import pytest

import backcheck
from backcheck.errors import ArgumentError, BackcheckError, BadInputError
from backcheck.outputs import computes_alike, within_spread
from backcheck.render import html as H
from backcheck.render import json as JS
from backcheck.render import svg
from backcheck.render import terminal as TM
from backcheck.verdict import rms

EDGES = (1e300, -1e308, 1e308, 1e-320, 0.0, 1.0)
X = np.array([0.3, -0.2, 0.5])


def _renderings(r):
    return {
        "str": lambda: str(r),
        "to_dict": r.to_dict,
        "json": lambda: json.loads(JS.to_json(r)),
        "html": lambda: H.render_html(r),
        "plain": lambda: TM.print_report(r, file=io.StringIO(), color=False),
        "rich": lambda: TM.print_report(r, file=io.StringIO(), color=True),
        "leaves": lambda: [lf.to_dict() for lf in r.leaves],
    }


def _linear(scale, claim):
    return lambda: backcheck.check(lambda x: scale * np.sum(x), X.copy(), lambda x: np.full(3, claim), curves=True)


def _layer(d, wrong):
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)

    def backward(dd, x, w, b):
        return (dd @ w.T, x.T @ dd, (2.0 if wrong else 1.0) * dd.sum(0))

    return lambda: backcheck.check_layer(
        lambda x, w, b: x @ w + b, backward, (x, w, b), dout=np.full((4, 2), d), curves=True
    )


CASES = [(f"linear {a:g} claim {g:g}", _linear(a, g)) for a, g in itertools.product(EDGES, repeat=2)]
CASES += [(f"layer dout {d:g} {w}", _layer(d, w)) for d in (1e300, 1e308, -1e307, 1e-310) for w in (False, True)]
CASES.append((
    "float32 loss of 1e200",
    lambda: backcheck.check(
        lambda x: 1e200 * np.sum(np.tanh(x.astype(np.float64))),
        X.astype(np.float32),
        lambda x: 1e200 * (1 - np.tanh(x.astype(np.float64)) ** 2),
    ),
))


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_checks_and_renderings_of_values_near_float64s_edges_warn_nothing(name, make):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            r = make()
        except BackcheckError:
            return  # a typed refusal (a non-finite value) is the contract too
        for render in _renderings(r).values():
            render()
            render()  # twice: a first rendering leaves the report whole


def test_the_numeric_helpers_of_outputs_and_rms_warn_nothing_at_float64s_edges():
    big = np.array([1e200, -1e200, 1e308, -1e308, 1e-320])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert computes_alike(big, big.copy(), eps=2.0**-23)
        assert not computes_alike(-big[:4], big[:4], eps=2.0**-23)
        assert not within_spread(-big[:4], big[:4], big[:4])
        assert rms(np.array([1e200, 1e200])) == pytest.approx(1e200, rel=1e-12)
        assert rms(np.array([1e300, -1e300, 1e300])) == pytest.approx(1e300, rel=1e-12)
        assert np.isfinite(rms(np.array([1e308, np.inf])))
        _ = svg.histogram(np.array([1e308, 1e-320, np.inf, 0.0]), name="edges")
        _ = svg.heatmap(np.array([[1e308, -1e308], [np.inf, np.nan]]), name="edges")
        _ = svg.v_curve([1e-8, 1e300], [1e308, 1e-320], chosen=1e-8, bound=1e308)


def test_a_report_whose_details_fail_once_computes_them_again():
    r = backcheck.check(lambda x: np.sum(x**2), X.copy(), lambda x: 2 * x)
    lf = r.leaves[0]
    compute = lf.__dict__["_details"]
    calls = []

    def interrupted():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return compute()

    lf.__dict__["_details"] = interrupted
    with pytest.raises(KeyboardInterrupt):
        _ = lf.max_abs_err
    assert lf.max_abs_err >= 0.0 and lf.worst and len(calls) == 2
    assert "_details" not in lf.__dict__


@pytest.fixture(scope="module")
def report():
    return backcheck.check(lambda x: np.sum(x**2), X.copy(), lambda x: 2 * x)


@pytest.mark.parametrize(
    "call,culprit",
    [
        (lambda r: H.render_html(None), "reports is None"),
        (lambda r: H.render_html("abc"), "reports is a str"),
        (lambda r: H.render_html([r, 3]), "reports[1] is an int"),
        (lambda r: H.render_html({"a": r}), "reports is a dict"),
        (lambda r: H.render_html(r, title=3), "title is an int"),
        (lambda r: JS.to_json(None), "reports is None"),
        (lambda r: JS.to_json([r, object()]), "reports[1] is an object"),
        (lambda r: TM.print_report(None), "report is None"),
        (lambda r: TM.print_report("PASS", file=io.StringIO()), "report is a str"),
        (lambda r: TM.renderables(3), "report is an int"),
    ],
)
def test_junk_in_place_of_a_report_is_a_typed_error_naming_the_argument(report, call, culprit):
    with pytest.raises(ArgumentError, match="Hint:") as info:
        call(report)
    assert culprit in str(info.value)
    assert isinstance(info.value, TypeError)  # as before: a TypeError


@pytest.mark.parametrize("labels", [["a"], ["a", "b", "c"], "ab", 3])
def test_labels_of_the_wrong_number_or_kind_are_a_typed_error(report, labels):
    calls = (lambda: JS.to_json([report, report], labels=labels), lambda: H.render_html([report] * 2, labels=labels))
    for call in calls:
        with pytest.raises(BadInputError, match="labels") as info:
            call()
        assert "Hint:" in str(info.value) and isinstance(info.value, ValueError)


def test_writing_to_a_folder_or_an_unwritable_path_is_a_typed_error_naming_the_path(report, tmp_path):
    for write, what in ((H.write_html, "HTML"), (JS.write_json, "JSON")):
        with pytest.raises(BadInputError, match=f"{what} report path .* is a folder"):
            write(report, tmp_path)
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(BadInputError, match=f"could not write the {what} report") as info:
            write(report, blocker / "sub" / "r.out")  # a folder under a file cannot be created
        assert str(blocker) in str(info.value) and isinstance(info.value.__cause__, OSError)
        assert write(report, tmp_path / "new" / "r.out").is_file()


def test_an_unknown_leaf_name_is_a_typed_key_error_listing_the_leaves(report):
    with pytest.raises(KeyError) as info:
        report.leaf("nope")
    assert isinstance(info.value, BadInputError)
    text = str(info.value)
    assert "'nope'" in text and "['x']" in text and "Hint:" in text and not text.startswith("'")
    assert report.leaf("x") is report.leaves[0]


def test_print_report_names_a_file_that_is_not_a_stream():
    from backcheck.render.terminal import print_report

    r = backcheck.check(lambda x: float(np.sum(x**2)), np.ones(3), lambda x: 2 * x)
    with pytest.raises(backcheck.errors.ArgumentError, match="file is an int, not a text stream"):
        print_report(r, file=3)
