"""Unit tests of backcheck.tree: packing trees into one vector, the arrays perturbed, and their exact restore."""

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

from backcheck.containers import flatten, map_leaves, rebuild_like
from backcheck.errors import GradientStructureError, ParamsError, UserFunctionError
from backcheck.tree import Tree

Pair = namedtuple("Pair", "w b")


def nested():
    rng = np.random.default_rng(0)
    return {"layer": Pair(rng.normal(size=(2, 3)), rng.normal(size=3)), "extra": [rng.normal(size=4), 0.5]}


def test_flatten_names_every_leaf_by_its_path_and_rebuild_restores_the_structure():
    t = nested()
    flat = flatten(t, "p")
    assert [n for n, _ in flat] == ["p['layer'].w", "p['layer'].b", "p['extra'][0]", "p['extra'][1]"]
    again = rebuild_like(t, [x for _, x in flat])
    assert isinstance(again["layer"], Pair) and isinstance(again["extra"], list)
    assert again["extra"][1] == 0.5 and again["layer"].w is t["layer"].w
    doubled = map_leaves(lambda x: 2 * np.asarray(x), t)
    np.testing.assert_array_equal(doubled["layer"].b, 2 * t["layer"].b)
    assert isinstance(rebuild_like(OrderedDict(a=1, b=2), [3, 4]), OrderedDict)


def test_offsets_names_and_locate_over_a_nested_tree():
    t = nested()
    tree = Tree(t, "p")
    assert tree.size == 6 + 3 + 4 + 1
    assert [lf.offset for lf in tree.leaves] == [0, 6, 9, 13]
    assert tree.element_name(4) == "p['layer'].w[1, 1]"
    assert tree.element_name(13) == "p['extra'][1]"
    np.testing.assert_array_equal(tree.values()[6:9], t["layer"].b)


@pytest.mark.parametrize(
    "view",
    [lambda W: W[:, ::2], lambda W: W[:, 3], lambda W: W.T, lambda W: W[::-1, 1:5:3], lambda W: W[2]],
    ids=["strided", "column", "transpose", "reversed", "row"],
)
def test_views_are_perturbed_in_place_and_restored_exactly(view):
    W = np.random.default_rng(1).normal(size=(4, 6))
    before = W.tobytes()
    v = view(W)
    tree = Tree(v, "v")
    leaf = tree.leaves[0]
    assert leaf.in_place and np.shares_memory(leaf.work, W)
    leaf.work[...] = 7.0  # what an evaluation does, through the view
    changed = tree.changed()
    assert changed and changed[0][1].size == v.size
    assert tree.intact(tree.sums())
    tree.restore()
    assert W.tobytes() == before and tree.changed() == []


def test_aliased_leaves_are_refused_with_both_names():
    W = np.ones((3, 4))
    with pytest.raises(ParamsError, match=r"p\['a'\] and p\['b'\] share memory"):
        Tree({"a": W, "b": W}, "p")
    with pytest.raises(ParamsError, match=r"p\['a'\] and p\['b'\]"):
        Tree({"a": W, "b": W[1, ::2]}, "p")
    # interleaved views do not overlap; copies (in_place=False) are independent: both are fine
    assert Tree({"a": W[:, ::2], "b": W[:, 1::2]}, "p").size == 12
    assert Tree({"a": W, "b": W}, "p", in_place=False).size == 24


def test_empty_leaves_and_empty_trees():
    tree = Tree({"a": np.zeros((0, 3)), "b": np.arange(3.0), "c": np.zeros(0)}, "p")
    assert tree.size == 3 and tree.element_name(1) == "p['b'][1]"
    assert tree.changed() == [] and tree.intact(tree.sums())
    np.testing.assert_array_equal(tree.pack({"a": np.zeros((0, 3)), "b": np.ones(3), "c": np.zeros(0)}), np.ones(3))
    empty = Tree([np.zeros(0), np.zeros((2, 0))], "p")
    assert empty.size == 0 and any("no elements to check" in n for n in empty.notes())
    with pytest.raises(ParamsError, match="no arrays"):
        Tree({}, "p")


def test_zero_d_arrays_are_perturbed_in_place_and_scalars_rebuilt():
    z = np.array(2.0)
    tree = Tree({"z": z, "s": 3.0}, "p")
    assert tree.leaves[0].in_place and np.shares_memory(tree.leaves[0].work, z)
    tree.leaves[1].work[()] = 4.0
    cur = tree.current()
    assert cur["z"] is z and type(cur["s"]) is float and cur["s"] == 4.0
    tree.restore()
    assert tree.current()["s"] == 3.0


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_matrix_is_handed_over_as_a_matrix_and_masked_arrays_are_refused():
    M = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    tree = Tree({"M": M, "s": 1.0}, "p")
    assert tree.leaves[0].shape == (2, 2) and np.shares_memory(tree.leaves[0].work, M)
    assert type(tree.current()["M"]) is np.matrix
    copied = Tree({"M": M}, "p", in_place=False)
    assert type(copied.current()["M"]) is np.matrix and not np.shares_memory(copied.leaves[0].work, M)
    with pytest.raises(ParamsError, match="masked array"):
        Tree(np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "x")


def test_restore_undoes_a_reshape_and_a_read_only_flag_and_names_what_it_cannot_undo():
    x = np.arange(6.0).reshape(2, 3)
    tree = Tree(x, "x")
    sums = tree.sums()
    x.shape = (6,)
    assert not tree.intact(sums) and tree.changed()
    tree.restore()
    assert x.shape == (2, 3) and tree.intact(sums)
    x.flags.writeable = False
    assert not tree.intact(sums)
    tree.restore()
    assert x.flags.writeable
    y = np.arange(4.0)
    tree = Tree(y, "y")
    y.resize((5,), refcheck=False)
    with pytest.raises(UserFunctionError, match="y cannot be put back"):
        tree.restore()


def test_checksums_see_a_single_bit_and_nothing_else():
    x = np.linspace(-1, 1, 7).astype(np.float32)
    tree = Tree(x, "x")
    sums = tree.sums()
    assert tree.intact(sums)
    x.view(np.uint32)[3] ^= 1  # one bit of one element
    assert not tree.intact(sums)
    assert [int(i) for i in tree.changed()[0][1]] == [3]
    tree.restore()
    assert tree.intact(sums)


def test_pack_accepts_other_float_dtypes_reports_them_and_judges_at_the_coarser():
    tree = Tree({"a": np.ones(3, np.float32), "b": np.ones(2)}, "p")
    g, dtypes = tree.pack_dtypes({"a": np.ones(3), "b": np.ones(2, np.float32)})
    np.testing.assert_array_equal(g, np.ones(5))
    assert dtypes == {"p['a']": np.float64, "p['b']": np.float32}
    eps = tree.grad_eps(dtypes)
    assert eps is not None
    np.testing.assert_array_equal(eps, np.finfo(np.float32).eps)  # float32 for both: the coarser of each pair
    assert tree.grad_eps({"p['a']": np.dtype(np.float64)}) is None  # finer than the input: the input's own
    assert any("float32's resolution" in n for n in tree.dtype_notes(dtypes))
    with pytest.raises(GradientStructureError, match="strict_dtype"):
        tree.pack({"a": np.ones(3), "b": np.ones(2)}, strict_dtype=True)
    with pytest.raises(GradientStructureError, match="dtype int64"):
        tree.pack({"a": np.ones(3, np.int64), "b": np.ones(2)})


def test_non_finite_inputs_are_excluded_noted_and_packed_as_zero_while_nan_gradients_are_kept():
    x = np.array([0.5, -np.inf, np.nan, 2.0])
    tree = Tree({"x": x, "y": np.ones(2)}, "p")
    np.testing.assert_array_equal(tree.excluded, [1, 2])
    assert any("p['x']: 2 of 4" in n for n in tree.notes())
    g = tree.pack({"x": np.array([1.0, np.nan, np.nan, 3.0]), "y": np.array([np.nan, 1.0])})
    np.testing.assert_array_equal(g[:4], [1.0, 0.0, 0.0, 3.0])
    assert np.isnan(g[4])  # a NaN gradient elsewhere is a failing element, not a packing error


def test_fresh_copies_never_share_memory_with_the_user():
    t = nested()
    tree = Tree(t, "p")
    fresh = tree.fresh()
    assert not np.shares_memory(fresh["layer"].w, t["layer"].w)
    flat = np.arange(tree.size, dtype=np.float64)
    again = tree.fresh(flat, np.float32)
    assert again["extra"][0].dtype == np.float32 and again["extra"][0][0] == 9.0


def test_ties_group_equal_values_across_the_tree_or_within_each_array():
    from backcheck.tree import Tree

    tree = Tree({"a": np.array([1.0, 2.0, 1.0, np.inf]), "b": np.array([1.0, 3.0, np.inf])}, "p")
    across = tree.ties(np.array([0, 5]))  # a[0] holds 1 as a[2] and b[0] do; b[1] (3) ties with nothing
    assert [g.tolist() for g in across] == [[0, 2, 4]]
    within = tree.ties(np.array([0, 4]), within_arrays=True)  # b[0]'s 1 is alone in b
    assert [g.tolist() for g in within] == [[0, 2]]
    assert tree.ties(np.array([3, 6])) == []  # infinities (masks) tie nothing
