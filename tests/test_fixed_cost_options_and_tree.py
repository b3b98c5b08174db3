"""What the fixed cost of a tiny check saves must not change what a check does: options made from plain values
are shared but validated as before, and the tree tells an array whose memory moved from the address it read
once."""

from __future__ import annotations

import numpy as np
import pytest

import backcheck
from backcheck.errors import BadInputError, UserFunctionError
from backcheck.options import Options
from backcheck.tree import Tree


def test_options_of_plain_values_are_validated_once_and_shared():
    a = Options.make(strategy="full", samples=5, seed=3, atol=1e-9)
    assert Options.make(strategy="full", samples=5, seed=3, atol=1e-9) is a
    assert Options.make(strategy="full", samples=6, seed=3, atol=1e-9) is not a
    assert (a.strategy, a.samples, a.atol, a.seed_value) == ("full", 5, 1e-9, 3)


def test_a_shared_set_of_options_still_refuses_a_bool_where_an_int_is_asked():
    Options.make(samples=1)  # (kept: True == 1 and hash(True) == hash(1))
    with pytest.raises(BadInputError, match="samples=True"):
        Options.make(samples=True)
    with pytest.raises(BadInputError, match="strategy"):
        Options.make(strategy="fast")
    with pytest.raises(BadInputError, match="strategy"):  # (an error is not kept either)
        Options.make(strategy="fast")


def test_seed_none_draws_fresh_entropy_at_every_check():
    assert Options.make(seed=None).seed_value != Options.make(seed=None).seed_value
    x = np.linspace(0.1, 1.0, 200)
    r1 = backcheck.check(lambda x: float(np.sum(x**2)), x, lambda x: 2 * x, strategy="sparse", samples=5, seed=None)
    r2 = backcheck.check(lambda x: float(np.sum(x**2)), x, lambda x: 2 * x, strategy="sparse", samples=5, seed=None)
    seeds = [[n for n in r.notes if "seed=" in n] for r in (r1, r2)]
    assert r1.ok and r2.ok and len(seeds[0]) == len(seeds[1]) == 1
    assert seeds[0] != seeds[1]  # each states its own seed


def test_arrays_options_are_made_fresh_each_time():
    step = np.full(3, 1e-5)
    a = Options.make(step=step)
    assert Options.make(step=step) is not a and np.array_equal(a.step, step)


def test_an_array_resized_away_and_back_has_moved_and_is_put_back_in_its_new_memory():
    y = np.arange(1.0, 5.0)
    tree = Tree({"y": y}, "p")
    assert tree.changed() == []
    y.resize((100_000,), refcheck=False)  # large enough to move
    y.resize((4,), refcheck=False)  # its shape as before, in other memory
    assert not np.shares_memory(tree.leaves[0].work, y)
    y[:] = [1.0, 2.0, 3.0, 4.0]  # even its values as before
    assert [leaf.name for leaf, _ in tree.changed()] == ["p['y']"]
    with pytest.raises(UserFunctionError, match=r"p\['y'\] cannot be put back as it was.*memory moved"):
        tree.restore()
    assert np.shares_memory(tree.leaves[0].work, y)  # perturbing goes on in the memory the array has now
    assert tree.changed() == [] and tree.intact(tree.sums())
