"""A forward whose outputs drift with its call count (state kept on the object: a counter, a running statistic) is
refused as random or stateful. For a layer the values compared are its outputs' change weighed by dout, not what
it returned: the message said 'fl returned 0.0 and then 0.00179', values it never returned, and named randomness
alone."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import NondeterministicError


def test_a_drifting_layer_is_told_by_its_outputs_change_and_state() -> None:
    calls = [0]

    def drifting(x):
        calls[0] += 1
        return x * (1 + 1e-3 * calls[0])

    with pytest.raises(NondeterministicError) as info:
        backcheck.check_layer(drifting, lambda d, x: d, (np.ones(3),))
    message = info.value.message
    assert message.startswith("drifting's outputs changed between two calls at the same input"), message
    assert "weighed by dout" in message and "state" in message and "returned" not in message


def test_a_drifting_loss_still_says_what_it_returned() -> None:
    calls = [0]

    def loss(x):
        calls[0] += 1
        return float(np.sum(x**2)) + 1e-3 * calls[0]

    with pytest.raises(NondeterministicError, match=r"^loss returned 3\.00\d+ and then 3\.00\d+ for the same input"):
        backcheck.check(loss, np.ones(3), lambda x: 2 * x)
