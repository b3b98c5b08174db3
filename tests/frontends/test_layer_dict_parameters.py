"""check_layer on deeplearning.ai's cell layout: a ``parameters`` dict of arrays as an input (each entry perturbed
and named ``parameters['Wax']``), and a backward that returns its gradients in a dict keyed by ``d`` and the inputs'
names or the dict's keys (``{"dxt", "da_prev", "dWax", "dWaa", "dba"}``). Both were refused, or left the
parameters unchecked with advice that cannot work for a dict."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import GradientStructureError

RNG = np.random.default_rng(0)
P = {"Wax": RNG.normal(size=(4, 3)), "Waa": RNG.normal(size=(4, 4)), "ba": RNG.normal(size=(4, 1))}
XT, A_PREV = RNG.normal(size=(3, 2)), RNG.normal(size=(4, 2))


def rnn_cell_forward(xt, a_prev, parameters):
    a_next = np.tanh(parameters["Wax"] @ xt + parameters["Waa"] @ a_prev + parameters["ba"])
    return a_next, (a_next, a_prev, xt, parameters)


def _backward(wrong: str = "", drop: str = ""):
    def rnn_cell_backward(da_next, cache):
        a_next, a_prev, xt, p = cache
        dz = da_next * (1 - a_next**2)
        g = {
            "dxt": p["Wax"].T @ dz,
            "da_prev": p["Waa"].T @ dz,
            "dWax": dz @ xt.T,
            "dWaa": dz @ a_prev.T,
            "dba": dz.sum(1, keepdims=True),
        }
        if wrong:
            g[wrong] = g[wrong].copy()
            g[wrong].flat[0] *= 1.02
        g.pop(drop, None)
        return g

    return rnn_cell_backward


def test_a_cell_with_a_parameters_dict_and_a_dict_of_gradients():
    before = {k: v.copy() for k, v in P.items()}
    r = backcheck.check_layer(rnn_cell_forward, _backward(), (XT, A_PREV, P), cache=True)
    assert r.status == "pass", r
    assert [lf.name for lf in r.leaves] == [
        "xt",
        "a_prev",
        "parameters['Wax']",
        "parameters['Waa']",
        "parameters['ba']",
    ]
    assert all(np.array_equal(P[k], before[k]) for k in P)


@pytest.mark.parametrize(("wrong", "name"), [("dWaa", "parameters['Waa']"), ("da_prev", "a_prev")])
def test_a_wrong_entry_fails_where_it_belongs(wrong, name):
    r = backcheck.check_layer(rnn_cell_forward, _backward(wrong), (XT, A_PREV, P), cache=True)
    assert [lf.name for lf in r.leaves if lf.status == "fail"] == [name], r


def test_a_missing_entry_is_named():
    with pytest.raises(GradientStructureError, match="no gradient of parameters"):
        backcheck.check_layer(rnn_cell_forward, _backward(drop="dba"), (XT, A_PREV, P), cache=True)
