"""Input spaces of the zoo's layers for :func:`backcheck.explore`: shapes with free dimensions, value domains,
kinks and hyper-parameters, and no hand-picked values.

``space(name)`` returns the keyword arguments of ``explore`` (``inputs``, and ``dims``, ``hyper``,
``where`` where the layer has them) for every layer in ``LAYERS`` and ``EDGE_LAYERS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backcheck.explore.space import Array, Integers, Ints, Labels, Mask

A = Array


def _rows(*names: str, **kw: Any) -> dict[str, Any]:
    """Every input an (N, D) array."""
    return {"inputs": {n: A("N", "D", **kw) for n in names}}


def _fits(*pairs: tuple[str, str], pad: int | str = 0) -> Any:
    """``where``: each spatial size plus twice the padding covers the kernel."""

    def ok(e: Mapping[str, Any]) -> bool:
        p = e[pad] if isinstance(pad, str) else pad
        return all(e[size] + 2 * p >= e[k] for size, k in pairs)

    return ok


def _square(domain: str = "real") -> dict[str, Any]:
    return {"inputs": {"a": A("B", "n", "n", domain=domain)}}


_CONV = {"x": A("N", "C", "H", "W"), "w": A("F", "C", "K", "K"), "b": A("F")}
_RNN = {"x": A("N", "D"), "h_prev": A("N", "H"), "wx": A("D", "H"), "wh": A("H", "H"), "b": A("H")}


def _gates(k: int) -> dict[str, Any]:
    return {"wx": A("D", lambda e: k * e["H"]), "wh": A("H", lambda e: k * e["H"]), "b": A(lambda e: k * e["H"])}


SPACES: dict[str, dict[str, Any]] = {
    # activations
    **{n: _rows("x") for n in ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "softplus", "softmax",
                               "log_softmax")},
    "prelu": {"inputs": {"x": A("N", "D"), "alpha": A("D", domain="unit")}},
    "hardtanh": _rows("x", kinks=(-1.0, 1.0)),
    # losses
    "softmax_cross_entropy": {"inputs": {"x": A("N", "C"), "y": Labels("N", classes="C")}},
    "mse": {"inputs": {"pred": A("N", "D"), "target": A("N", "D")}},
    "svm_hinge": {"inputs": {"x": A("N", "C"), "y": Labels("N", classes="C")}},
    "hinge_binary": {"inputs": {"x": A("N", kinks=(1.0, -1.0)), "y": Integers("N", values=(-1, 1))}},
    "bce_with_logits": {"inputs": {"x": A("N", "D"), "t": A("N", "D", domain="unit")}},
    "huber": {"inputs": {"pred": A("N", "D"), "target": A("N", "D")}},
    "l1": {"inputs": {"pred": A("N", "D"), "target": A("N", "D")}},
    # linear
    "affine": {"inputs": {"x": A("N", "P", "Q"), "w": A(lambda e: e["P"] * e["Q"], "M"), "b": A("M")}},
    "bilinear": {"inputs": {"x1": A("N", "I"), "x2": A("N", "J"), "w": A("K", "I", "J")}},
    "embedding": {"inputs": {"ids": Integers("N", "L", high="V"), "w": A("V", "D")}},
    "mlp_relu": {"inputs": {"x": A("N", "D"), "w1": A("D", "H"), "b1": A("H"), "w2": A("H", "M"), "b2": A("M")}},
    "maxout": {"inputs": {"x": A("N", "D"), "w": A("D", lambda e: 2 * e["U"]), "b": A(lambda e: 2 * e["U"])},
               "dims": {"U": (1, 3)}},
    # conv (conv2d: stride 2, padding 1; conv2d_relu and conv1d: stride 1, padding 1)
    "conv2d": {"inputs": _CONV, "dims": {"H": (1, 6), "W": (1, 6), "K": (1, 3), "N": (1, 3)},
               "where": _fits(("H", "K"), ("W", "K"), pad=1)},
    "conv2d_relu": {"inputs": _CONV, "dims": {"H": (1, 5), "W": (1, 5), "K": (1, 3), "N": (1, 3)},
                    "where": _fits(("H", "K"), ("W", "K"), pad=1)},
    "conv1d": {"inputs": {"x": A("N", "C", "L"), "w": A("F", "C", "K"), "b": A("F")},
               "dims": {"L": (1, 8)}, "where": _fits(("L", "K"), pad=1)},
    "depthwise_conv2d": {"inputs": {"x": A("N", "C", "H", "W"), "w": A("C", "K", "K")}, "dims": {"K": (1, 3)}},
    # pooling
    "maxpool2d": {"inputs": {"x": A("N", "C", "H", "W")}, "dims": {"H": (3, 7), "W": (3, 7)}},
    "maxpool2d_ties": {"inputs": {"x": A("N", "C", "H", "W")}, "dims": {"H": (2, 6)}},
    "avgpool2d": {"inputs": {"x": A("N", "C", "H", "W")}, "dims": {"H": [2, 4, 6], "W": [2, 4]}},
    "global_avgpool": {"inputs": {"x": A("N", "C", "H", "W")}},
    "global_maxpool": {"inputs": {"x": A("N", "C", "H", "W")}},
    "sort": _rows("x"),
    # normalization (groupnorm: 2 groups)
    "batchnorm_train": {"inputs": {"x": A("N", "D"), "gamma": A("D"), "beta": A("D")}},
    "layernorm": {"inputs": {"x": A("N", "D"), "gamma": A("D"), "beta": A("D")}},
    "groupnorm": {"inputs": {"x": A("N", "C", "H", "W"), "gamma": A("C"), "beta": A("C")}, "dims": {"C": [2, 4]}},
    "l2_normalize": _rows("x"),
    # recurrent
    "rnn_step": {"inputs": _RNN},
    "rnn_relu_step": {"inputs": _RNN},
    "lstm_step": {"inputs": {"x": A("N", "D"), "h_prev": A("N", "H"), "c_prev": A("N", "H"), **_gates(4)}},
    "gru_step": {"inputs": {"x": A("N", "D"), "h_prev": A("N", "H"), **_gates(3)}},
    # attention
    "attention": {"inputs": {"q": A("B", "T", "D"), "k": A("B", "S", "D"), "v": A("B", "S", "E")}},
    "masked_attention": {"inputs": {"q": A("B", "T", "D"), "k": A("B", "S", "D"), "v": A("B", "S", "E"),
                                    "mask": Mask("T", "S", each_row=True)}},
    # linear algebra
    "matmul": {"inputs": {"a": A("M", "K"), "b": A("K", "P")}},
    "batched_matmul": {"inputs": {"a": A("B", "M", "K"), "b": A("B", "K", "P")}},
    "trace": _square(),
    "det": _square("invertible"),
    "logdet": _square("invertible"),
    "inverse": _square("invertible"),
    "solve": {"inputs": {"a": A("n", "n", domain="invertible"), "b": A("n", "P")}},
    "cholesky": {"inputs": {"a": A("n", "n", domain="spd")}},
    "frobenius_norm": {"inputs": {"a": A("B", "M", "P")}},
    # regularization
    "dropout": {"inputs": {"x": A("N", "D"), "mask": Mask("N", "D")}},
    "weight_decay_l2": {"inputs": {"w": A("N", "D")}},
    "weight_decay_l1": {"inputs": {"w": A("N", "D")}},
    # elementwise
    "exp": _rows("x"),
    "log": _rows("x", domain="positive"),
    "sqrt": _rows("x", domain="positive"),
    "pow": {"inputs": {"x": A("N", "D", domain="positive"), "y": A("N", "D")}},
    "divide": {"inputs": {"a": A("N", "D"), "b": A("N", "D", domain="nonzero")}},
    "maximum": _rows("a", "b"),
    "abs": _rows("x"),
    "where": {"inputs": {"cond": Mask("N", "D"), "a": A("N", "D"), "b": A("N", "D")}},
    # layers wrong only at particular inputs (backcheck.zoo.edges)
    "conv2d_pad": {"inputs": _CONV, "hyper": {"stride": Ints(1, 3), "pad": Ints(0, 2)},
                   "dims": {"H": (1, 6), "W": (1, 6), "K": (1, 3), "N": (1, 2), "C": (1, 2), "F": (1, 2)},
                   "where": _fits(("H", "K"), ("W", "K"), pad="pad")},
    "maxpool2d_pad": {"inputs": {"x": A("N", "C", "H", "W")},
                      "hyper": {"k": Ints(1, 3), "stride": Ints(1, 3), "pad": Ints(0, 1)},
                      "dims": {"H": (1, 6), "W": (1, 6)},
                      "where": lambda e: 2 * e["pad"] <= e["k"] and _fits(("H", "k"), ("W", "k"), pad="pad")(e)},
    "maxpool2d_share": {"inputs": {"x": A("N", "C", "H", "W")}, "hyper": {"k": Ints(1, 3), "stride": Ints(1, 3)},
                        "dims": {"H": (1, 6), "W": (1, 6)}, "where": _fits(("H", "k"), ("W", "k"))},
    "rnn_seq": {"inputs": {"x": A("N", "T", "D"), "h0": A("N", "H"), "wx": A("D", "H"), "wh": A("H", "H"),
                           "b": A("H")}},
}


def space(name: str) -> dict[str, Any]:
    """The ``explore`` keyword arguments describing layer ``name``'s inputs (a fresh dict)."""
    try:
        return dict(SPACES[name])
    except KeyError:
        raise KeyError(f"no input space for zoo layer {name!r}") from None


def explore_layer(name: str, bug: str | None = None, **options: Any) -> Any:
    """:func:`backcheck.explore` over zoo layer ``name`` (its correct backward, or the bug called ``bug``)
    from its input space alone; ``options`` go to ``explore``. The printed test names the layer through
    ``backcheck.zoo.get``.
    """
    from backcheck.explore import explore
    from backcheck.zoo import get

    layer = get(name)
    backward, ref = layer.backward, f"get({name!r}).backward"
    if bug is not None:
        found = [k for k, b in enumerate(layer.bugs) if b.name == bug]
        if not found:
            raise KeyError(f"zoo layer {name!r} has no bug {bug!r}; its bugs: {[b.name for b in layer.bugs]}")
        backward, ref = layer.bugs[found[0]].backward, f"get({name!r}).bugs[{found[0]}].backward"
    imports = ["from backcheck.zoo import get"]
    source = ((imports, f"get({name!r}).forward"), (imports, ref))
    title = f"{name} / {bug or 'correct'}"
    return explore(layer.forward, backward, **{**space(name), "title": title, "source": source, **options})


__all__ = ["SPACES", "explore_layer", "space"]
