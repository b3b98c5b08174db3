"""Reports say what happened: the headline names a finding, a check's kind reads as words, and a pass with a
large relative error says why it stands."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from backcheck.render._data import LARGE_REL_ERR, finding_phrase, headline, leaf_data, rel_err_note
from backcheck.render.html import render_html
from backcheck.render.terminal import print_report
from backcheck.render.text import render_report
from backcheck.report import Finding, Report


def test_mutation_alone_is_named_in_the_headline(mutating: Report) -> None:
    assert all(lf.status == "pass" for lf in mutating.leaves) and mutating.status == "fail"
    assert headline(mutating) == "FAIL (mutation: backward wrote into x)"
    assert render_report(mutating).startswith("backcheck FAIL (mutation: backward wrote into x): ")
    buf = io.StringIO()
    print_report(mutating, file=buf, color=True)
    assert "FAIL (mutation: backward wrote into x)" in buf.getvalue()
    page = render_html(mutating)
    # in the table of contents and in the section's heading
    assert page.count(">FAIL (mutation: backward wrote into x)</span>") == 2


def test_mutation_with_mismatches_is_named_too(forward_mutates: Report) -> None:
    assert forward_mutates.leaves[0].status == "fail"
    assert headline(forward_mutates) == "FAIL (mutation: forward wrote into x)"


def test_plain_verdicts_have_no_reason(failing: Report, passing32: Report) -> None:
    assert not failing.findings and headline(failing) == "FAIL"
    assert render_report(failing).startswith("backcheck FAIL: ")
    assert headline(passing32) == "PASS"


@pytest.mark.parametrize(("finding", "phrase"), [
    (Finding("mutation", "m", "step", ["p['W'][0, 1]", "p['W'][2, 0]", "p['b'][1]"]),
     "mutation: step wrote into p['W'], p['b']"),
    (Finding("mutation", "m", "forward", ["s"]), "mutation: forward wrote into s"),
    (Finding("mutation", "m", "", []), "mutation: the function wrote into its arguments"),
    # a backward that writes into its saved ``a`` changes the gradient of ``b`` (a.T @ g): the phrase says which
    # gradient changed, not that the state written was b's
    (Finding("saved state", "m", "b", ["b[0, 1]"]), "saved state: a second backward pass gives another gradient for b"),
    (Finding("saved state", "m", ""), "saved state"),
    (Finding("missing gradient", "m", "w"), "missing gradient in w"),
])
def test_finding_phrases(finding: Finding, phrase: str) -> None:
    assert finding_phrase(finding) == phrase


def test_subtitle_names_the_kind_in_words(odd: Report, failing: Report) -> None:
    assert odd.kind == "check" and failing.kind == "layer"
    page = render_html([odd, failing])
    assert "check check" not in page
    assert ">gradient check, strategy sparse" in page and ">layer check, strategy full" in page


def _note(report: Report) -> str:
    (d,) = leaf_data(report)
    return rel_err_note(d)


def test_a_pass_with_a_large_relative_error_says_why(tiny_gradient: Report) -> None:
    (lf,) = tiny_gradient.leaves
    assert lf.status == "pass" and lf.max_rel_err >= LARGE_REL_ERR
    note = _note(tiny_gradient)
    # it names the element near zero (x[0] = 1e-10, gradient 2e-10) and the bound it was held to
    assert "comes from x[0]," in note and "tiny against the bound" in note
    bound = float(np.asarray(tiny_gradient.bound)[0])
    assert f"the bound {bound:.3g}" in note
    assert f"analytic {2e-10:.3g}" in note
    text = render_report(tiny_gradient)
    assert f"  x: {note}" in text.splitlines()
    page = render_html(tiny_gradient)
    assert re.search(r'<td title="[^"]*comes from x\[0\][^"]*">[^<]*<sup>\*</sup></td>', page)
    assert '<p class="why">' in page and "the bound is the judge" in page


def test_without_arrays_the_note_uses_the_listed_elements(tiny_gradient: Report) -> None:
    from dataclasses import replace

    bare = replace(tiny_gradient, _numeric=None, _analytic=None, _bound=None, _status=None)
    assert "comes from x[0]," in _note(bare)


def test_no_note_when_the_relative_error_is_small_or_the_leaf_fails(passing32: Report, failing: Report) -> None:
    assert all(lf.max_rel_err < LARGE_REL_ERR for lf in passing32.leaves)
    assert not any(rel_err_note(d) for d in leaf_data(passing32))
    assert any(lf.max_rel_err >= LARGE_REL_ERR for lf in failing.leaves)
    assert not any(rel_err_note(d) for d in leaf_data(failing))
    assert '<p class="why">' not in render_html([passing32, failing])
