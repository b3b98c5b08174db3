"""A report's seconds are the whole check's: in the jax frontend the baseline and the batched differences run
before the orchestration starts; in the torch frontend each output is checked alone after it. (Lower bounds only:
the work is stretched by a known sleep, so nothing depends on the machine's speed.)"""

from __future__ import annotations

import time

import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")
bj = pytest.importorskip("backcheck.jax")
bt = pytest.importorskip("backcheck.torch")

PAUSE = 0.2


def test_jax_seconds_count_the_batched_differences(monkeypatch):
    import backcheck.frontends.jax._check as jc

    prefetch = jc._prefetch

    def slow_prefetch(*args, **kwargs):
        time.sleep(PAUSE)
        return prefetch(*args, **kwargs)

    monkeypatch.setattr(jc, "_prefetch", slow_prefetch)
    report = bj.check(lambda x: jnp.sin(x), jnp.linspace(0.1, 1.0, 6))
    assert report.ok and report.seconds >= PAUSE, report.seconds


def test_torch_seconds_count_each_output_checked_alone(monkeypatch):
    import backcheck.frontends.torch._check as tc

    run = tc.run
    calls = {"n": 0}

    def slow_run(*args, **kwargs):
        calls["n"] += 1
        time.sleep(PAUSE)
        return run(*args, **kwargs)

    monkeypatch.setattr(tc, "run", slow_run)
    report = bt.check(lambda x: (torch.sin(x), torch.cos(x)), torch.linspace(0.1, 1.0, 5, dtype=torch.float64))
    assert report.ok and calls["n"] >= 3  # the check, then each output alone
    assert report.seconds >= calls["n"] * PAUSE, (report.seconds, calls)
