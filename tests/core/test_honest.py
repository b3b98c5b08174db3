"""Pass means vouched: jumps, noise, quantized losses and overflow are inconclusive, never a silent pass."""

import numpy as np
import pytest

import backcheck


def step_plus_square(x):
    return float(np.sum(np.sign(x) * x**2 + (x >= 0)))


@pytest.mark.parametrize("claimed", [0.0, 7.0, 123.0, 1e6])
def test_a_jump_is_inconclusive_whatever_the_rule_claims(claimed):
    x = np.array([0.0, 0.5, -0.3, 1.0])

    def grad(x):
        g = 2 * np.abs(x)
        g[0] = claimed
        return g

    for strategy in ("full", "auto"):
        r = backcheck.check(step_plus_square, x, grad, strategy=strategy)
        assert r.status == "inconclusive", r
        assert r.leaves[0].counts.get("jump") == 1
        assert any("jumps at x[0]" in n and "by 1" in n for n in r.notes)
    wrong_elsewhere = backcheck.check(step_plus_square, x, lambda x: grad(x) + np.array([0, 1.0, 0, 0]))
    assert wrong_elsewhere.status == "fail"  # a wrong element beside the jump still fails


@pytest.mark.parametrize("claimed", [0.0, 1.0, 1e7])
@pytest.mark.parametrize("shift", [0.0, 5.0])
def test_a_point_midway_in_its_jump_is_a_jump(claimed, shift):
    # sign at 0: f moves by the same amount to either side, and keeps it as the step halves
    x = np.array([0.0, 1.0])
    r = backcheck.check(lambda x: float(np.sum(np.sign(x))) + shift, x, lambda x: np.array([claimed, 0.0]))
    assert r.status == "inconclusive" and r.leaves[0].counts == {"ok": 1, "jump": 1}, r


def test_atan2_at_the_origin_and_a_floor_layer_are_jumps_not_kinks():
    r = backcheck.check(lambda x: float(np.arctan2(x[0], x[1])), np.array([0.0, -1.0]), lambda x: np.array([-1.0, 0.0]))
    assert r.status == "inconclusive" and r.leaves[0].n_kinks == 0
    layer = backcheck.check_layer(np.floor, lambda d, x: (np.zeros_like(x),), (np.array([1.0, 0.3]),))
    assert layer.status == "inconclusive" and layer.leaves[0].counts.get("jump") == 1


def test_a_relu_input_just_off_its_kink_is_no_jump():
    x = np.array([1e-7, -1e-7, 0.4])
    r = backcheck.check_layer(lambda x: np.maximum(x, 0), lambda d, x: (d * (x > 0),), (x,))
    assert r.ok and "jump" not in r.leaves[0].counts, r


def _jitter(x):
    """Deterministic noise of the point's bits: like rounding, it does not vary smoothly."""
    return (np.frombuffer(np.ascontiguousarray(x).tobytes(), dtype=np.uint64) % 1000003).sum() / 1000003.0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("amplitude", [1e-8, 1e-6])
def test_noise_never_lets_a_50_percent_error_pass(seed, amplitude):
    x = np.linspace(0.1, 2, 20)

    def f(x):
        return float(np.sum(np.sin(x)) + amplitude * _jitter(x))

    assert backcheck.check(f, x, np.cos, seed=seed).status in ("pass", "inconclusive")
    assert backcheck.check(f, x, lambda x: 1.5 * np.cos(x), seed=seed).status in ("fail", "inconclusive")


def test_a_quantized_loss_is_inconclusive_not_a_false_failure():
    x = np.linspace(0.1, 2, 20)
    r = backcheck.check(lambda x: float(np.round(np.sum(np.sin(x)), 3)), x, np.cos)
    assert r.status == "inconclusive", r
    assert not any(f.kind == "unread input" for f in r.findings)


def test_a_float32_leaf_beside_a_float64_one_does_not_blind_the_float64_one():
    p = {"a": np.array(0.25), "b": np.array(1.0, dtype=np.float32)}

    def loss(p):
        return float(np.sum(p["a"] ** 2 + 0.1 * p["a"]) + 2 * np.sum(np.float64(p["b"]) ** 2 + 0.1 * p["b"]))

    def grad(p, k=1.0):
        return {"a": k * (2 * p["a"] + 0.1), "b": np.float32(2 * (2 * p["b"] + 0.1))}

    assert backcheck.check(loss, p, grad).ok
    assert backcheck.check(loss, p, lambda p: grad(p, 1.5)).leaf("p['a']").status == "fail"


@pytest.mark.parametrize("scale", [1e200, 1e-300])
def test_extreme_scales_never_pass_a_wrong_gradient(scale, recwarn):
    x = np.linspace(0.2, 1.0, 6)
    f = lambda x: float(scale * np.sum(np.sin(x)))  # noqa: E731
    assert backcheck.check(f, x, lambda x: scale * np.cos(x)).status in ("pass", "inconclusive")
    assert backcheck.check(f, x, lambda x: 1.3 * scale * np.cos(x)).status in ("fail", "inconclusive")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_float32_steps_truncation_is_no_scale_error_but_a_real_factor_is():
    x = np.zeros((4, 4), np.float32)
    f = lambda x: float(np.sum(np.sin(x.astype(np.float64))))  # noqa: E731
    assert backcheck.check(f, x, np.cos).ok  # its steps' truncation (h^2/6) looks like a scale of 1 - 4e-6
    y = np.random.default_rng(0).normal(size=40).astype(np.float32)

    def backward(k):
        return lambda d, y: ((d * (1 - np.tanh(y) ** 2) * k).astype(np.float32),)

    assert backcheck.check_layer(np.tanh, backward(1.0), (y,), upcast=True).ok
    scaled = backcheck.check_layer(np.tanh, backward(1 + 2e-5), (y,), upcast=True)
    assert scaled.status == "fail" and "uniformly scaled" in scaled.leaves[0].note


def test_a_float32_loss_of_float64_parameters_uses_float32_steps():
    x = np.linspace(0.0, 1.0, 8)
    f = lambda x: np.float32(np.sum(np.sin(x)))  # noqa: E731
    assert backcheck.check(f, x, np.cos).ok
    assert backcheck.check(f, x, lambda x: np.cos(x) * np.r_[1.01, np.ones(7)]).status == "fail"


def test_a_pole_in_one_element_does_not_blind_its_neighbours():
    x = np.array([1e-10, 0.5, 1.0, 2.0])  # 1/x: the first element sits next to the pole, within one step

    def backward(k):
        return lambda d, x: (-d / x**2 * np.array([1.0, k, 1.0, 1.0]),)

    right = backcheck.check_layer(lambda x: 1 / x, backward(1.0), (x,))
    # next to the pole, 1/x looks like a jump at the default step; at steps below 1e-10 it is smooth, and passes
    assert right.status == "pass" and right.leaves[0].counts == {"ok": 4}, right
    wrong = backcheck.check_layer(lambda x: 1 / x, backward(1.01), (x,))
    assert wrong.status == "fail"
    assert [e.name for e in wrong.leaves[0].worst if e.status == "mismatch"] == ["x[1]"]


def test_round_numbers_are_no_sign_of_a_float32_kernel():
    x = np.array([1e-10, 0.5, 1.0, 2.0])  # outputs 1e10, 2, 1, 0.5: exact in float32, but integers or short
    r = backcheck.check_layer(lambda x: 1 / x, lambda d, x: (-d / x**2,), (x,))
    assert not any("returns float32" in n for n in r.notes)


@pytest.mark.parametrize("seed", range(4))
def test_float16_parameters_are_differenced_in_float64_when_f_allows(seed):
    W = np.random.default_rng(seed).normal(size=12).astype(np.float16)

    def f(W):
        return np.sum(np.tanh(W) ** 2)

    def g(W, k=1.0):
        return 2 * np.tanh(W) * (1 - np.tanh(W) ** 2) * W.dtype.type(k)

    assert backcheck.check(f, W, g).status == "pass"
    for k in (1.05, 1.3):
        bad = backcheck.check(f, W, lambda W, k=k: g(W, k))
        assert bad.status == "fail", bad
    assert W.dtype == np.float16


def test_float16_parameters_read_through_a_closure_are_never_a_silent_pass():
    W = np.random.default_rng(0).normal(size=12).astype(np.float16)
    r = backcheck.check(lambda _: np.sum(np.tanh(W) ** 2), W, lambda _: 1.3 * 2 * np.tanh(W) * (1 - np.tanh(W) ** 2))
    assert r.status in ("fail", "inconclusive"), r


@pytest.mark.parametrize("step", [None, 1e-3, 1e-2, 3e-2, 1e-1])
def test_inputs_cast_to_bfloat16_give_the_same_kind_of_verdict_at_every_step(step):
    # f is piecewise constant (its inputs quantized): a correct rule is never a fail, a wrong one never a pass
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    for seed in range(6):
        x = np.random.default_rng(seed).normal(size=8).astype(np.float32)

        def f(x):
            return float(np.sum(np.tanh(x.astype(bf16).astype(np.float32))))

        def g(x, k=1.0):
            return k * (1 - np.tanh(x) ** 2)

        assert backcheck.check(f, x, g, step=step, seed=seed).status == "inconclusive"
        assert backcheck.check(f, x, lambda x: g(x, 1.3), step=step, seed=seed).status != "pass"


def test_a_value_that_moves_only_in_coarse_steps_is_inconclusive_not_wrong():
    # (1 + tiny(x)) - 1 changes only by whole rounding units of 1: the finite differences stand still
    x = np.array([0.0, 0.5, -0.3])
    r = backcheck.check(lambda x: float(np.sum((1 + 1e-14 * np.exp(x)) - 1)), x, lambda x: 1e-14 * np.exp(x))
    assert r.status == "inconclusive" and not r.findings, r
    assert any("coarse steps" in n for n in r.notes)


def test_a_rule_for_an_input_f_never_reads_still_fails():
    x = np.array([0.4, -0.2, 0.7])
    r = backcheck.check(lambda x: float(np.sum(x[:2] ** 2)), x, lambda x: np.array([2 * x[0], 2 * x[1], 0.7]))
    assert r.status == "fail" and [e.name for e in r.mismatches] == ["x[2]"], r
    copy = x.copy()
    closure = backcheck.check(lambda _: float(np.sum(copy**2)), x, lambda x: 2 * x)
    assert closure.status == "fail" and [f.kind for f in closure.findings] == ["unread input"]


def test_a_random_function_whose_baseline_calls_agree_by_chance_is_still_caught():
    # random from its third call on (as a mask of a few bits may agree twice by chance): the check evaluates the
    # point again before it measures the noise, sees the randomness, and replays numpy's stream as usual
    calls = [0]

    def late_coin(x):
        calls[0] += 1
        jitter = 0.0 if calls[0] <= 2 else np.random.random()
        return float(np.sum(x**2) + jitter)

    r = backcheck.check(late_coin, np.arange(1.0, 4.0), lambda x: 2 * x)
    assert r.status == "pass" and any("random" in n for n in r.notes), r


def test_a_locally_constant_function_is_told_from_an_unread_input() -> None:
    # a threshold (a straight-through estimator's forward) reads its input but stands still at every step: its
    # derivative is 0 whatever the rule says; a closure over a copy never reads the input at all
    x = np.random.default_rng(3).normal(size=6)
    w = np.arange(1.0, 7.0)

    def step(p):
        return float(np.sum((p > 0) * w))

    ste = backcheck.check(step, x, lambda p: w)  # the straight-through rule
    assert ste.status == "fail" and [f.kind for f in ste.findings] == ["locally constant"], ste
    assert "straight-through" in ste.findings[0].message
    assert backcheck.check(step, x, lambda p: 0 * w).ok  # its derivative
    copy = x.copy()
    unread = backcheck.check(lambda p: float(np.sum(copy**2)), x, lambda p: 2 * p)
    assert [f.kind for f in unread.findings] == ["unread input"]
    assert np.array_equal(copy, x)


def _float16_inside():
    x = np.linspace(0.1, 1.0, 5).astype(np.float32)
    return x, np.cos(x.astype(np.float16)).astype(np.float32)


def test_a_float32_function_rounded_to_float16_inside_never_fails_a_right_rule():
    # f moves in float16 steps: the screen's first differences agree within rounding by chance, and a Richardson
    # table of a step function makes no derivative; a right rule is inconclusive, never a fail
    x, g = _float16_inside()
    f = lambda x: np.sum(np.sin(x.astype(np.float16))).astype(np.float32)  # noqa: E731
    assert backcheck.check(f, x, lambda x: g).status == "inconclusive"
    assert backcheck.check(f, x, lambda x: 2 * g).status != "pass"


def test_a_torch_function_rounded_to_float16_inside_is_inconclusive():
    torch = pytest.importorskip("torch")
    import backcheck.torch as bt

    x, g = _float16_inside()

    class Half(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return torch.sin(x.half()).float()

        @staticmethod
        def backward(ctx, gy):
            (x,) = ctx.saved_tensors
            return gy * torch.cos(x.half()).float() * ctx.k, None

    for k, expected in ((1.0, "inconclusive"), (2.0, "fail")):
        r = bt.check(lambda x, k=k: Half.apply(x, k).sum(), torch.from_numpy(x).requires_grad_())
        assert r.status == expected, r


def test_a_jax_function_rounded_to_float16_inside_is_inconclusive():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    import backcheck.jax as bj

    x, _ = _float16_inside()
    for k, expected in ((1.0, "inconclusive"), (2.0, "fail")):

        @jax.custom_vjp
        def h(x):
            return jnp.sin(x.astype(jnp.float16)).astype(jnp.float32)

        h.defvjp(lambda x: (h(x), x), lambda x, gy, k=k: (gy * jnp.cos(x.astype(jnp.float16)).astype(jnp.float32) * k,))
        r = bj.check(lambda x: h(x).sum(), jnp.asarray(x))
        assert r.status == expected, r


def test_a_staircase_with_a_zero_rule_is_never_a_fail_under_auto():
    # sum(floor(1000 x)): piecewise constant, its derivative 0 wherever it exists; at 20,000 elements auto checks
    # a sample one by one, and a Richardson table's wide steps average the jumps into a slope of 1000
    x = np.random.default_rng(0).normal(size=20000)
    r = backcheck.check(lambda x: np.sum(np.floor(x * 1000)), x, np.zeros_like)
    assert r.status != "fail", r


def test_a_threshold_far_from_every_element_is_still_told_locally_constant() -> None:
    # a spike's Heaviside at 0 with inputs all farther from it than half their size: the probe also moves every
    # element to minus itself, which crosses the threshold
    x = np.array([0.9, -1.3, 0.7, -2.0, 1.1, 0.8])

    def spike(p):
        return float(np.sum(p > 0))

    r = backcheck.check(spike, x, lambda p: 1 / (1 + np.abs(p)) ** 2)  # a surrogate gradient
    assert r.status == "fail" and [f.kind for f in r.findings] == ["locally constant"], r


def test_an_inconclusive_array_names_the_cause_the_check_measured():
    x = np.linspace(0.1, 2, 20)
    r = backcheck.check(lambda x: float(np.round(np.sum(np.sin(x)), 3)), x, np.cos)
    assert r.status == "inconclusive" and "f moves in steps of 0.001" in str(r), r
    assert "a pole or a dtype too narrow" not in str(r)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_a_float16_gradient_left_unvouched_names_its_own_rounding(dtype):
    # a layer whose backward pass does not read its input (no float64 run of it can tell its formula from its
    # rounding): a float16 gradient is granted 16 of its epsilons, by SAFETY 6% of its size, above what a pass must
    # see; the numeric side (float64 copies of a linear map) is exact, so the cause is the gradient's own dtype
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(dtype)
    r = backcheck.check_layer(lambda x: x * 2, lambda d, x: ((2 * d).astype(x.dtype),), (x,), strategy="full")
    if dtype == np.float16:
        assert r.status == "inconclusive" and "the gradient's own dtype rounds to 0.00098 of its size" in str(r), r
        assert "a pole or a dtype too narrow" not in str(r)
    else:  # float32's grant is 8e-6 of the gradient: a pass
        assert r.status == "pass", r
