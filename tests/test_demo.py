"""`make demo` runs `backcheck demo`: the engine trains with its layers checked, then the checker tour."""

import io

import backcheck.demo


def test_the_checker_tour_gives_pass_fail_pass():
    out = io.StringIO()
    reports = backcheck.demo.checker_tour(out)
    assert [r.status for r in reports] == ["pass", "fail", "pass"]
    text = out.getvalue()
    assert "x[5, 1]" in text and "kink" in text  # the culprit of the bug, and the kinks, are named


def test_the_demo_reaches_its_targets_with_every_layer_checked(capsys):
    assert backcheck.demo.main() == 0
    printed = capsys.readouterr().out
    assert printed.count("gradient check of every layer on the first batch") == 2
    assert "all layers pass" in printed and "final test accuracy" in printed
