"""Data loading, batching, the training loop and its gradient-check hook."""

from __future__ import annotations

import numpy as np
import pytest

from backcheck import nn


@pytest.fixture(scope="module")
def digits():
    return nn.load_digits()


def test_load_digits_shapes_dtypes_and_determinism(digits):
    d = digits
    assert d.X_train.shape[1:] == (1, 8, 8) and d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert len(d.X_train) + len(d.X_test) == 1797 and abs(len(d.X_test) - 0.2 * 1797) < 10
    assert abs(float(d.X_train.mean())) < 1e-5 and abs(float(d.X_train.std()) - 1) < 1e-4
    assert set(np.unique(d.y_test)) == set(range(10))  # stratified: every class in the test set
    again = nn.load_digits()
    np.testing.assert_array_equal(d.X_train, again.X_train)
    np.testing.assert_array_equal(d.y_test, again.y_test)
    other = nn.load_digits(seed=1)
    assert not np.array_equal(d.y_train, other.y_train)
    assert nn.load_digits(dtype=np.float64).X_train.dtype == np.float64


def test_batches_cover_everything_once_and_are_seeded():
    X, y = np.arange(10)[:, None], np.arange(10)
    got = np.concatenate([yb for _, yb in nn.batches(X, y, 3, rng=np.random.default_rng(1))])
    assert sorted(got) == list(range(10)) and list(got) != list(range(10))
    again = np.concatenate([yb for _, yb in nn.batches(X, y, 3, rng=np.random.default_rng(1))])
    np.testing.assert_array_equal(got, again)
    assert [len(b) for _, b in nn.batches(X, y, 4, shuffle=False)] == [4, 4, 2]
    assert [len(b) for _, b in nn.batches(X, y, 4, drop_last=True)] == [4, 4]
    for xb, yb in nn.batches(X, y, 3):
        np.testing.assert_array_equal(xb[:, 0], yb)


def _tiny_fit(digits, **kwargs):
    nn.manual_seed(0)
    model = nn.MLP([64, 32, 10])
    small = digits.subset(500, 200)
    opt = nn.Adam(model.parameters(), lr=1e-2)
    return model, nn.fit(
        model, small, epochs=2, optimizer=opt, batch_size=32, progress=False, seed=0, **kwargs
    )


def test_tiny_mlp_learns_quickly_and_deterministically(digits):
    _, h = _tiny_fit(digits)
    assert len(h.loss) == len(h.accuracy) == len(h.test_accuracy) == 2
    assert h.loss[1] < h.loss[0]
    assert h.final_test_accuracy > 0.8
    assert h.steps == 2 * 16 and h.seconds > 0
    _, h2 = _tiny_fit(digits)
    assert h2.loss == h.loss and h2.test_accuracy == h.test_accuracy


def _recorder():
    calls = []

    def check_fn(model, xb, yb):
        calls.append((model.training, xb.shape, yb.shape))
        return f"checked {len(calls)}"

    return calls, check_fn


def test_check_first_calls_check_fn_once_on_the_first_batch(digits):
    calls, fn = _recorder()
    _, h = _tiny_fit(digits, check="first", check_fn=fn)
    assert len(calls) == 1 and calls[0] == (True, (32, 1, 8, 8), (32,))
    assert h.checks == [(0, "checked 1")]


def test_check_every_n_steps(digits):
    calls, fn = _recorder()
    _, h = _tiny_fit(digits, check="every:5", check_fn=fn)
    assert [step for step, _ in h.checks] == list(range(0, 32, 5))
    assert all(training for training, _, _ in calls)


def test_check_never(digits):
    calls, fn = _recorder()
    _, h = _tiny_fit(digits, check="never", check_fn=fn)
    assert calls == [] and h.checks == []


def test_check_fn_is_never_called_in_eval_mode(digits):
    modes = []

    def check_fn(model, xb, yb):
        modes.append([m.training for m in model.modules()])
        model.eval()  # a careless check function: fit must restore training mode for the step

    model, h = _tiny_fit(digits, check="every:10", check_fn=check_fn)
    assert all(all(m) for m in modes) and len(modes) == 4


def test_check_fn_can_capture_and_replay_layers(digits):
    def check_fn(model, xb, yb):
        with model.capture() as rec:
            nn.cross_entropy(model(nn.Tensor(xb)), yb).backward()
        model.zero_grad()
        layer = model.get_submodule("layers.1")
        r = rec["layers.1"]
        _, grads = layer.vjp(r.inputs, r.grad_output, params=r.params)
        return {name: float(np.abs(g).max()) for name, g in grads.items()}

    _, h = _tiny_fit(digits, check="first", check_fn=check_fn)
    assert set(h.checks[0][1]) == {"weight", "bias"}


def test_progress_prints_a_line_per_epoch_when_not_a_terminal(digits, capsys):
    nn.manual_seed(0)
    model = nn.MLP([64, 16, 10])
    nn.fit(model, digits.subset(64, 32), epochs=2, batch_size=32, progress=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "test" in lines[1]


def test_evaluate_restores_mode(digits):
    model = nn.MLP([64, 10], dropout=0.0)
    model.train()
    acc = nn.evaluate(model, digits.X_test, digits.y_test)
    assert 0.0 <= acc <= 1.0 and model.training


def test_fit_casts_float64_data_to_a_float32_models_dtype():
    """np.random's float64 data given to a float32 model: every layer computes in float32 (torch would refuse the
    mix; X.float() is what its users write), not silently in float64."""
    from backcheck.nn import MLP, Module

    seen: list[np.dtype] = []

    class Spy(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = MLP([4, 8, 3])

        def forward(self, x):
            seen.append(x.dtype)
            return self.inner(x)

    rng = np.random.default_rng(0)
    X, y = rng.random((16, 4)), rng.integers(0, 3, 16)
    assert X.dtype == np.float64
    nn.fit(Spy(), (X, y, X, y), epochs=1, batch_size=8, check="never", progress=False)
    assert seen and set(seen) == {np.dtype(np.float32)}
