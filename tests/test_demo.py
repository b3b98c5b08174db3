"""`make demo` runs `backcheck demo`: the engine trains with its layers checked, then the checker tour."""

import io

import backcheck.demo


def test_the_checker_tour_gives_pass_fail_pass():
    out = io.StringIO()
    reports = backcheck.demo.checker_tour(out)
    assert [r.status for r in reports] == ["pass", "fail", "pass"]
    bug = reports[1]
    # the missing mean term changes every element of dx, and only dx: all 32 are named wrong, gamma and beta pass
    assert [(lf.name, lf.status, lf.n_mismatch) for lf in bug.leaves] == [
        ("x", "fail", 32), ("gamma", "pass", 0), ("beta", "pass", 0)
    ]
    text = out.getvalue()
    worst = bug.leaf("x").worst[0]
    assert worst.status == "mismatch" and worst.name in text  # the culprit is printed
    assert sum(lf.n_kinks for lf in reports[2].leaves) > 0 and "kink" in text  # the kinks are recognized and said


def test_the_demo_reaches_its_targets_with_every_layer_checked(capsys):
    assert backcheck.demo.main() == 0
    printed = capsys.readouterr().out
    assert printed.count("gradient check of every layer on the first batch") == 2
    assert "all layers pass" in printed and "final test accuracy" in printed
