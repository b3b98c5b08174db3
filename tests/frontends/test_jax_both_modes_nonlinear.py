"""mode='both' on a custom_jvp rule that is not linear in its tangent (|t|, t*t): jax cannot transpose it into
reverse mode, and the check fails with the 'nonlinear jvp' finding and a note that reverse mode was not checked,
as mode='fwd' does; it raised the transpose error (or a bare AssertionError from jax's internals)."""

import numpy as np
import pytest

from backcheck.errors import UserFunctionError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")


def _rule(kind):
    @jax.custom_jvp
    def f(x):
        return jnp.sin(x) * x

    @f.defjvp
    def jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        d = jnp.cos(x) * x + jnp.sin(x)
        return f(x), d * {"abs": jnp.abs(t), "square": t * t, "linear": t}[kind]

    return f


X = np.random.default_rng(0).normal(size=5)


@pytest.mark.parametrize("kind", ["abs", "square"])
def test_both_modes_report_a_nonlinear_jvp(kind):
    report = bj.check(_rule(kind), X, mode="both")
    assert report.status == "fail", report
    assert [f.kind for f in report.findings] == ["nonlinear jvp"], report.findings
    assert any("reverse mode was not checked" in n for n in report.notes), report.notes


def test_a_linear_rule_checks_both_modes():
    report = bj.check(_rule("linear"), X, mode="both")
    assert report.status == "pass", report
    assert not any("reverse mode was not checked" in n for n in report.notes)


def test_reverse_mode_alone_still_says_it_cannot_be_built():
    with pytest.raises(UserFunctionError):
        bj.check(_rule("abs"), X, mode="rev")
