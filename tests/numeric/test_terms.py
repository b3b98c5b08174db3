"""The rounding of the terms one element enters, measured along that element alone where the model overstates it.

numerical_grad models that rounding as ``eps |x| |phi'|`` per value (``p`` times the size of a term ``x**p``),
capped at what the noise probe measured along all elements at once. On ``0.01 x**8`` the model exceeds the cap
for the largest elements, and the cap is then the rounding of every element's terms together: the element's own
noise is measured (24 evaluations), only there, and its estimate comes down while still bounding its error."""

import numpy as np
import pytest

from backcheck import numerical_grad
from backcheck.evaluate import Evaluator, Output
from backcheck.numeric import grad as grad_module
from backcheck.numeric.grad import MEASURED_NOISE, refine_elements
from backcheck.numeric.noise import element_noise, estimate_noise
from backcheck.numeric.steps import default_steps
from backcheck.tree import Tree


def _poly8(x):
    return np.sum(0.01 * x**8 - 0.5 * x**4 + x)


def _poly8_grad(x):
    return 0.08 * x**7 - 2 * x**3 + 1


def _refined(x, method, measure):
    calls = []

    def f(v):
        calls.append(1)
        return _poly8(v)

    ev = Evaluator(Tree(x.copy()), f, Output.loss("f"))
    ev.baseline()
    ev.noise = estimate_noise(ev, default_steps(ev.tree))
    cap = MEASURED_NOISE * ev.noise
    before = len(calls)
    res = refine_elements(ev, method=method, noise=ev.noise, term_cap=cap, measure_terms=measure)
    return res, len(calls) - before - int(np.sum(res.evaluations)), cap, ev.phi0


@pytest.mark.parametrize("method", ["backward", "forward", "central"])
@pytest.mark.parametrize("seed", [1, 3])
def test_an_element_whose_modelled_rounding_exceeds_the_probe_is_measured_alone(method, seed):
    x = np.random.default_rng(seed).normal(size=30).astype(np.float32)
    exact = _poly8_grad(x.astype(np.longdouble)).astype(np.float64)
    eps = float(np.finfo(np.float32).eps)
    off, spent_off, cap, phi0 = _refined(x, method, measure=False)
    on, spent_on, _, _ = _refined(x, method, measure=True)
    assert spent_off == 0
    model = eps * np.abs(x.astype(np.float64) * exact)
    # asked where the model exceeds the cap and the cap is several times the rounding of phi itself
    candidates = np.flatnonzero((model > cap) & (cap > 3 * eps * abs(phi0)))
    assert candidates.size >= 1
    assert spent_on % 24 == 0 and 24 <= spent_on <= 24 * candidates.size
    changed = np.flatnonzero(on.error != off.error)
    assert changed.size >= 1 and set(changed) <= set(candidates)
    assert np.all(on.error[changed] < off.error[changed])
    # every other element is refined exactly as before
    same = np.setdiff1d(np.arange(x.size), changed)
    assert np.array_equal(on.value[same], off.value[same]) and np.array_equal(on.error[same], off.error[same])
    # and every estimate still bounds its error
    assert np.all(np.abs(on.value - exact) <= on.error)


def test_a_single_element_is_not_measured_again(monkeypatch):
    """Moving the only element, the probe measured that element's own rounding: numerical_grad spends nothing
    more on it, while on 30 elements it measures the elements whose model exceeds the cap."""
    asked = []

    def spy(ev, i, step, slope=None, seed=0):
        asked.append(i)
        return element_noise(ev, i, step, slope, seed)

    monkeypatch.setattr(grad_module, "element_noise", spy)
    x = np.array([2.7], dtype=np.float32)
    res, spent, cap, _ = _refined(x, "backward", measure=True)
    eps = float(np.finfo(np.float32).eps)
    assert eps * 2.7 * abs(float(_poly8_grad(np.longdouble(2.7)))) > cap  # the model exceeds the probe's cap
    assert spent == 24  # refine_elements, asked to, measures it ...
    asked.clear()
    g, err = numerical_grad(_poly8, x.copy(), method="backward", return_error=True)
    assert asked == []  # ... numerical_grad does not
    assert abs(g[0] - float(_poly8_grad(x.astype(np.longdouble))[0])) <= err[0]
    many = np.random.default_rng(1).normal(size=30).astype(np.float32)
    g, err = numerical_grad(_poly8, many.copy(), method="backward", return_error=True)
    assert 1 <= len(asked) <= 3
    assert np.all(np.abs(g - _poly8_grad(many.astype(np.longdouble)).astype(np.float64)) <= err)
