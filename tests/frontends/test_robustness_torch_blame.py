"""backcheck.torch.blame: whatever the loss function or the module does wrong is a typed error naming it, and the
module (hooks, parameters, .grad) and torch's random stream are left as they were."""

from __future__ import annotations

import pytest

from backcheck.errors import BadInputError, NotScalarError, UserFunctionError

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()


def _hooks(m):
    return sum(len(s._forward_hooks) + len(s._forward_pre_hooks) + len(s._backward_hooks) for s in m.modules())


def _state(m):
    return [p.detach().clone() for p in m.parameters()]


@pytest.mark.parametrize(
    "loss_fn,error,words",
    [
        (lambda o: 1 / 0, UserFunctionError, "ZeroDivisionError"),
        (lambda o: "x", NotScalarError, "a str"),
        (lambda o: 1.0, NotScalarError, "a float"),
        (lambda o: o, NotScalarError, "shape (5, 1)"),
        (lambda o: o.long().sum(), BadInputError, "torch.int64"),
        (lambda o: o.detach().sum(), BadInputError, "does not depend"),
        (3, BadInputError, "loss_fn is an int"),
    ],
)
def test_a_bad_loss_function_is_a_typed_error_and_the_module_is_left_as_it_was(loss_fn, error, words):
    net, x = _net(), torch.randn(5, 3, dtype=torch.float64)
    before = _state(net)
    with pytest.raises(error) as info:
        bt.blame(net, x, loss_fn=loss_fn)
    text = str(info.value)
    assert "Hint:" in text and words in text, text
    assert _hooks(net) == 0 and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, _state(net), strict=True))


def test_a_module_that_raises_is_a_typed_error_naming_it():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise KeyError("missing")

    net = torch.nn.Sequential(torch.nn.Linear(3, 3).double(), Broken())
    with pytest.raises(UserFunctionError, match="Sequential raised KeyError") as info:
        bt.blame(net, torch.randn(2, 3, dtype=torch.float64))
    assert isinstance(info.value.__cause__, KeyError) and _hooks(net) == 0


def test_an_output_without_a_float_tensor_is_a_typed_error():
    class Argmax(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3).double()

        def forward(self, x):
            return self.lin(x).argmax(dim=1)

    with pytest.raises(BadInputError, match="no floating-point tensor"):
        bt.blame(Argmax(), torch.randn(2, 3, dtype=torch.float64))


def test_the_recording_pass_leaves_torchs_random_stream_as_it_was():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    bt.blame(net, x)
    assert torch.equal(torch.get_rng_state(), state)
