"""backcheck.jax's batched first differences vmap one checked argument at a time, the others shared: a 1-d conv
batched over its input and its weights at once ran XLA's batched-weights path, 7-10x slower than the serial
check (helper C's sweep: 10.4 s against 0.73 s); batched by argument, rows of both, and of the point itself,
give the same differences as the serial check."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
bj = pytest.importorskip("backcheck.jax")
from backcheck.frontends.jax._trace import Runner  # noqa: E402


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1,), "VALID")


def _args():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.normal(size=(2, 3, 20)), jnp.float32), jnp.asarray(rng.normal(size=(4, 3, 5)), jnp.float32)


def test_each_batch_moves_one_argument(monkeypatch):
    seen = []
    batched = Runner.batched

    def spy(self, diff, axes=None):
        seen.append(axes)
        return batched(self, diff, axes)

    monkeypatch.setattr(Runner, "batched", spy)
    report = bj.check(_conv, *_args())
    assert report.status == "pass", report
    assert seen and all(a is not None and sorted(a, key=str) == [0, None] for a in seen), seen
    assert {a.index(0) for a in seen} == {0, 1}  # both arguments differenced


def test_batched_differences_match_the_serial_ones():
    x, w = _args()
    vec, ser = bj.check(_conv, x, w), bj.check(_conv, x, w, vectorized=False)
    assert vec.n_evals == ser.n_evals
    for name in ("x", "w"):
        np.testing.assert_array_equal(vec.numeric[name], ser.numeric[name])


def test_a_wrong_weight_rule_fails_through_the_batches():
    @jax.custom_vjp
    def conv(x, w):
        return _conv(x, w)

    def fwd(x, w):
        return _conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        _, vjp = jax.vjp(_conv, x, w)
        gx, gw = vjp(g)
        return gx, gw.at[0, 0, 0].multiply(1.1)

    conv.defvjp(fwd, bwd)
    report = bj.check(conv, *_args())
    assert report.status == "fail", report
    assert [e.name for e in report.leaves[1].worst if e.status == "mismatch"] == ["w[0, 0, 0]"], report
