"""check_object finds gradients under the short names of course code: ``self.dw``/``self.db`` for
``self.weight``/``self.bias`` (``d`` and the start of the parameter's name), and ``gradient_gamma`` beside
``gradient_beta`` for two parameters of one shape (a batch norm's), each name fitting one parameter only. Right
layers pass and a wrong gradient fails its parameter."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck

RNG = np.random.default_rng(5)
X = RNG.normal(size=(6, 4))


class Linear:  # CS7643 style: backward returns None, writes self.dx, self.dw, self.db
    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.weight, self.bias = rng.normal(size=(4, 3)), rng.normal(size=3)

    def forward(self, x):
        self.x = x
        return x @ self.weight + self.bias

    def backward(self, dout):
        self.dw = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.weight.T


class BatchNorm:  # gradients under gradient_<name>, gamma and beta of one shape
    def __init__(self) -> None:
        self.gamma, self.beta = np.linspace(0.5, 1.5, 4), np.linspace(-0.2, 0.3, 4)

    def forward(self, x):
        self.mu, self.var = x.mean(axis=0), x.var(axis=0)
        self.xhat = (x - self.mu) / np.sqrt(self.var + 1e-5)
        return self.gamma * self.xhat + self.beta

    def backward(self, dout):
        n = dout.shape[0]
        self.gradient_gamma = (dout * self.xhat).sum(axis=0)
        self.gradient_beta = dout.sum(axis=0)
        dxhat = dout * self.gamma
        return (n * dxhat - dxhat.sum(0) - self.xhat * (dxhat * self.xhat).sum(0)) / (n * np.sqrt(self.var + 1e-5))


class _LinearScaledDw(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dw = 1.02 * self.dw
        return dx


class _BatchNormSwapped(BatchNorm):
    def backward(self, dout):
        dx = super().backward(dout)
        self.gradient_gamma, self.gradient_beta = self.gradient_beta, self.gradient_gamma
        return dx


@pytest.mark.parametrize("layer", [Linear(), BatchNorm()], ids=["dw-db", "gradient-gamma-beta"])
def test_short_and_long_gradient_names_are_found(layer):
    report = backcheck.check_object(layer, X)
    assert report.status == "pass", report
    assert len(report.leaves) == 3, report


@pytest.mark.parametrize(
    "layer, wrong", [(_LinearScaledDw(), {"weight"}), (_BatchNormSwapped(), {"gamma", "beta"})], ids=["dw", "swapped"]
)
def test_a_wrong_gradient_under_such_a_name_fails(layer, wrong):
    report = backcheck.check_object(layer, X)
    assert report.status == "fail", report
    assert {leaf.name for leaf in report.leaves if leaf.status == "fail"} == wrong, report


class _BiasNotSummed(BatchNorm):
    def backward(self, dout):
        dx = super().backward(dout)
        self.gradient_beta = dout  # not summed over the batch: the shape of the output, not of beta
        return dx


def test_a_gradient_under_its_name_in_another_shape_is_named_so():
    from backcheck.errors import GradientStructureError

    with pytest.raises(GradientStructureError, match=r"has shape \(6, 4\).* but beta has shape \(4,\)"):
        backcheck.check_object(_BiasNotSummed(), X)
