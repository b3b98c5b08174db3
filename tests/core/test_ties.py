"""Ties of any size: a max whose gradient is routed to every tied element fails, whatever the group's size."""

import numpy as np
import pytest

import backcheck


def pool_forward(x):
    """2x2 max pool, stride 2, of an (H, W) array."""
    h, w = x.shape
    return x.reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))


def _windows(x):
    h, w = x.shape
    return x.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(h // 2, w // 2, 4)


def _back(d, x, every):
    h, w = x.shape
    win = _windows(x)
    top = win == win.max(axis=-1, keepdims=True)
    if not every:
        first = np.zeros_like(top)
        np.put_along_axis(first, win.argmax(axis=-1)[..., None], True, axis=-1)
        top = first
    g = top * d[..., None]
    return g.reshape(h // 2, w // 2, 2, 2).transpose(0, 2, 1, 3).reshape(h, w)


def routed_to_one(d, x):
    return _back(d, x, every=False)


def routed_to_all(d, x):
    return _back(d, x, every=True)


def tied_input(rng, size):
    """A 4x4 input whose first window holds a tie of ``size`` at its maximum; the other windows have none."""
    x = rng.normal(size=(4, 4))
    x[0:2, 0:2] = [[0.5, -1.0], [-1.5, -2.0]]
    flat = x[0:2, 0:2].reshape(-1)
    flat[:size] = 0.5
    x[0:2, 0:2] = flat.reshape(2, 2)
    return x


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_routing_to_every_tied_element_fails_for_ties_of_any_size(size, seed):
    x = tied_input(np.random.default_rng(seed), size)
    good = backcheck.check_layer(pool_forward, routed_to_one, x, seed=seed)
    assert good.ok, good
    bad = backcheck.check_layer(pool_forward, routed_to_all, x, seed=seed)
    assert bad.status == "fail", bad
    wrong = {e.name for e in bad.leaves[0].worst if e.status == "mismatch"}
    tied = {f"x[{i // 2}, {i % 2}]" for i in range(size)}
    assert wrong and wrong <= tied


@pytest.mark.parametrize("size", [2, 3, 4])
def test_ties_inside_a_small_network_loss(size):
    """A whole-model loss: max pool of a tied input, then a linear layer; params and input checked together."""
    rng = np.random.default_rng(size)
    params = {"x": tied_input(rng, size), "w": rng.normal(size=(4,)), "b": np.array(0.3)}

    def loss(p):
        return float(np.tanh(pool_forward(p["x"]).reshape(-1) @ p["w"] + p["b"]))

    def grad(p, every):
        pooled = pool_forward(p["x"]).reshape(-1)
        dz = 1 - np.tanh(pooled @ p["w"] + p["b"]) ** 2
        d_pooled = (dz * p["w"]).reshape(2, 2)
        return {"x": _back(d_pooled, p["x"], every), "w": dz * pooled, "b": np.array(dz)}

    assert backcheck.check(loss, params, lambda p: grad(p, False)).ok
    bad = backcheck.check(loss, params, lambda p: grad(p, True))
    assert bad.status == "fail" and bad.leaf("p['x']").status == "fail", bad


@pytest.mark.parametrize("apart", [1e-9, 1e-7, 1e-6])
@pytest.mark.parametrize("seed", range(3))
def test_a_near_tie_is_no_tie_the_max_alone_gets_the_gradient(apart, seed):
    """Two values ``apart`` inside one window, closer than the step: f is differentiable there, so routing the
    gradient to the max passes (it was inconclusive at 1e-6 apart) and routing it to the runner-up too fails."""
    x = tied_input(np.random.default_rng(seed), 2)
    x[0, 1] -= apart  # x[0, 0] is the max of its window, by ``apart``

    def to_the_runner_up_too(d, x):
        g = routed_to_one(d, x)
        g[0, 1] += d[0, 0]
        return g

    good = backcheck.check_layer(pool_forward, routed_to_one, x, seed=seed)
    assert good.ok, good
    bad = backcheck.check_layer(pool_forward, to_the_runner_up_too, x, seed=seed)
    assert bad.status == "fail", bad
    wrong = {e.name for e in bad.leaves[0].worst if e.status in ("mismatch", "dead")}
    # within 2^-4 of the step the pair is still a tie numerically: then both are named, as a tie's group
    assert "x[0, 1]" in wrong and wrong <= {"x[0, 0]", "x[0, 1]"}, bad


def _pooled_relu_input(seed):
    """96 x 96 post-ReLU values: half exactly 0, so that many 2x2 windows tie at 0 (9,216 elements: auto projects)."""
    return np.maximum(np.random.default_rng(seed).normal(size=(96, 96)), 0.0)


@pytest.mark.parametrize("seed", range(2))
def test_ties_at_scale_fail_under_auto_where_single_elements_look_valid(seed):
    # random directions cross the ties (kinks) and a sample of elements shows valid one-sided slopes; moving each
    # class of equal values together is differentiable, and a gradient routed to every tied element fails there
    x = _pooled_relu_input(seed)
    d = np.random.default_rng(10 + seed).normal(size=(48, 48))
    good = backcheck.check_layer(pool_forward, routed_to_one, x, dout=d, seed=seed)
    assert good.status != "fail" and good.strategy == "auto", good
    bad = backcheck.check_layer(pool_forward, routed_to_all, x, dout=d, seed=seed)
    assert bad.status == "fail" and "tied" in str(bad), bad


def test_moving_ties_together_through_a_relu_concludes_nothing():
    # relu(x) at exact zeros is a kink along any direction that moves them: no conclusion, no false alarm
    x = _pooled_relu_input(0)
    d = np.random.default_rng(1).normal(size=(48, 48))

    def relu_pool(x):
        return pool_forward(np.maximum(x, 0.0))

    def back(d, x):
        return routed_to_one(d, np.maximum(x, 0.0)) * (x > 0)

    assert backcheck.check_layer(relu_pool, back, x, dout=d).status != "fail"


@pytest.mark.parametrize(
    ("claim", "expected"),
    [((1.0, 1.0, 1.0), "fail"), ((0.0, 0.0, 0.0), "pass"), ((0.5, 0.5, 0.5), "pass"), ((1.0, 0.0, 0.0), "pass")],
)
def test_a_claim_outside_a_norms_unit_ball_fails_at_its_cone_point(claim, expected):
    # ||x|| at 0: every element alone has slopes -1 and 1, and no move of a group is differentiable; along the
    # claimed gradient's own direction the slopes are -1 and 1 too, so |g| must lie between them
    x = np.zeros(3)
    r = backcheck.check(lambda x: float(np.linalg.norm(x)), x, lambda x: np.array(claim))
    assert r.status == expected, r


def test_a_max_of_ties_keeps_its_valid_piece_gradients_along_their_own_direction():
    # max(x) and min(x) at a three-way tie: each piece's gradient (one element 1) is valid along its own direction
    x = np.zeros(3)
    for f in (np.max, np.min):
        assert backcheck.check(lambda x, f=f: float(f(x)), x, lambda x: np.array([1.0, 0.0, 0.0])).status == "pass"


def test_valid_subgradients_of_nested_kinks_are_not_failed_along_their_own_direction():
    # min(max(x0 + x1, x0), -x1) at 0: torch's (0.5, -0.25) is a Clarke subgradient (0.25 (1, 1) + 0.25 (1, 0)
    # + 0.5 (0, -1)), and f is differentiable along it with another slope: no conclusion there, not a fail
    def nested(x):
        return float(min(max(x[0] + x[1], x[0]), -x[1]))

    assert backcheck.check(nested, np.zeros(2), lambda x: np.array([0.5, -0.25])).status == "pass"


@pytest.mark.parametrize("point", [0.0, 1.0])
def test_a_kink_with_a_flat_side_is_no_quantum(point):
    # max(0, x0 - x1, c - x1) at a three-way tie: a noise probe across the kink stands still on the flat side
    # and moves smoothly on the other, which is no quantized value; the even split (0.25, -0.5) is valid
    def f(x, c=point):
        return float(max(0.0, x[0] - x[1], c - x[1]))

    x = np.full(2, point)
    assert backcheck.check(f, x, lambda x: np.array([0.25, -0.5])).status == "pass"


@pytest.mark.parametrize("every", [False, True])
def test_a_tie_the_screen_lets_through_is_not_failed_by_a_table_averaging_its_slopes(every):
    # integer-valued inputs tie in many windows; kinks elsewhere inflate the measured noise, so a tied element
    # may pass the screen at a wide bound and go to a Richardson table, whose central differences average the
    # tie's one-sided slopes (half the routed gradient): the element's own slopes, against the noise along it,
    # show the kink. Routing to every tied element still fails
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, size=(5, 32, 32)).astype(float)
    w = rng.normal(size=(5, 16, 16))

    def f(x):
        return float(sum(np.sum(pool_forward(c) * wc) for c, wc in zip(x, w, strict=True)))

    def grad(x):
        return np.stack([_back(wc, c, every) for c, wc in zip(x, w, strict=True)])

    r = backcheck.check(f, x, grad, seed=7)
    assert r.strategy == "auto" and (r.status == "fail") == every, r


@pytest.mark.parametrize("claim", [2.8, -0.8])
def test_a_claim_outside_a_kinks_slopes_fails_beside_a_large_float32_loss(claim):
    """sum(w relu(x)) + 5000 in float32, x[0] = 0 with slopes 0 and 2: phi's rounding (about half the gap over the
    step) must not widen the slopes' range a claim is held to."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=40).astype(np.float32)
    x[0] = 0.0
    w = (np.sign(rng.normal(size=40)) * 10).astype(np.float32)
    w[0] = 2.0

    def f(x):
        return np.float32(np.sum(w * np.maximum(x, 0), dtype=np.float32) + np.float32(5000))

    def grad(x):
        g = (w * (x > 0)).astype(np.float32)
        g[0] = claim
        return g

    report = backcheck.check(f, x, grad)
    assert report.status == "fail" and (0,) in [e.index for e in report.mismatches], report


def _conv_relu(s):
    """A 3x3 convolution (padding 1) and a ReLU whose backward takes ``s`` for its slope at 0 (any s in [0, 1] is a
    valid subgradient)."""
    from numpy.lib.stride_tricks import sliding_window_view

    def windows(x):
        return sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))

    def forward(x, w):
        return np.maximum(np.einsum("nchwij,fcij->nfhw", windows(x), w), 0.0)

    def backward(d, x, w):
        z = np.einsum("nchwij,fcij->nfhw", windows(x), w)
        dz = d * ((z > 0) + s * (z == 0))
        dxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2, x.shape[3] + 2))
        for i in range(3):
            for j in range(3):
                dxp[:, :, i : i + x.shape[2], j : j + x.shape[3]] += np.einsum("nfhw,fc->nchw", dz, w[:, :, i, j])
        return dxp[:, :, 1:-1, 1:-1], np.einsum("nchwij,nfhw->fcij", windows(x), dz)

    return forward, backward


@pytest.mark.parametrize("seed", [0, 1, 4, 5])
def test_a_relus_slope_between_0_and_1_at_kinks_of_both_signs_passes(seed):
    # integer data and weights put many pre-activations at 0, under a dout of both signs: elements feeding one such
    # ReLU share their jumps and were taken for a tie whose claim must lie between the slopes along it (true of a
    # max or a norm, not of kinks of both signs); their claims lie among the gradients around the point
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, size=(2, 2, 5, 5)).astype(float)
    w = rng.integers(-1, 2, size=(3, 2, 3, 3)).astype(float)
    for s in (0.25, 0.75):
        report = backcheck.check_layer(*_conv_relu(s), (x, w))
        assert report.status == "pass", report
    wrong_forward, _ = _conv_relu(0.5)
    _, right = _conv_relu(0.5)
    report = backcheck.check_layer(wrong_forward, lambda d, x, w: tuple(2 * g for g in right(d, x, w)), (x, w))
    assert report.status == "fail", report
