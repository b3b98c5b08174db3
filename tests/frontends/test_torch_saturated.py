"""A saturated attention in float32 (PyTorch's own operator sample scaled_dot_product_attention #7, dropout 0.5):
a key's softmax weights are 4e-13 and below, so its value gradient (about 6e-13) lies far below what its changes
of the outputs (size 1) resolve. Re-judged through the float64 run of the backward, it keeps the safeguards of
elements tiny beside their tensor: a pass, as in float64 and as gradcheck says."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import backcheck.torch as bt  # noqa: E402

DATA = Path(__file__).parent / "data" / "sdpa_saturated.npz"


def attention(q, k, v):
    torch.manual_seed(0)  # the same dropout mask at every call
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.5)


def test_a_saturated_attention_passes_in_float32_as_in_float64():
    saved = np.load(DATA)
    args = [torch.from_numpy(saved[n]).requires_grad_() for n in "qkv"]  # float32, as sampled
    r = bt.check(attention, *args)
    assert r.status == "pass", r
