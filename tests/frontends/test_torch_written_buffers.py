"""A module that writes its own buffers at every call (spectral_norm's power iteration in training mode) changes
between evaluations for that reason: the error names the buffers and says nothing random is involved (it blamed
randomness and hinted to seed a generator). The user's buffers are left as they were."""

import numpy as np
import pytest

from backcheck.errors import NondeterministicError

torch = pytest.importorskip("torch")
bt = pytest.importorskip("backcheck.torch")
nn = torch.nn


def test_a_module_writing_its_buffers_is_told_so_and_left_as_it_was():
    torch.manual_seed(0)
    m = nn.utils.spectral_norm(nn.Linear(4, 3)).double().train()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    before = {n: b.clone() for n, b in m.named_buffers()}
    with pytest.raises(NondeterministicError) as info:
        bt.check_module(m, x)
    assert "writes its buffers weight_u, weight_v" in info.value.message, info.value
    assert "eval" in info.value.hint
    for n, b in m.named_buffers():
        assert torch.equal(b, before[n]), n
    assert bt.check_module(m.eval(), x).status == "pass"


def test_a_random_module_is_still_checked_with_its_stream_replayed():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.3)).double().train()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    report = bt.check_module(m, x)
    assert report.status == "pass", report


class Rebinds(nn.Module):  # a forward that replaces its buffer with a new tensor rather than writing into it
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.register_buffer("seen", torch.zeros(2, dtype=torch.float64))

    def forward(self, x):
        out = self.lin(x)
        self.seen = self.seen + out.detach().mean(0)
        return out * (1 + self.seen.sum())


def test_a_module_rebinding_its_buffer_is_told_so_and_keeps_its_own_tensor():
    torch.manual_seed(1)
    m = Rebinds()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    own = m.seen
    with pytest.raises(NondeterministicError) as info:
        bt.check_module(m, x)
    assert "writes its buffers seen" in info.value.message, info.value
    assert m.seen is own and torch.equal(own, torch.zeros(2, dtype=torch.float64))


class _Keeps(torch.nn.Module):
    """Keeps its last activation, a history list and a counter tensor as plain attributes."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2).double()
        self.last, self.history, self.calls = None, [], torch.zeros(())

    def forward(self, z):
        out = torch.tanh(self.lin(z))
        self.last = out.detach()
        self.history.append(out.detach())
        self.calls += 1
        self.made_here = True
        return out


def test_a_modules_plain_attributes_are_as_the_user_left_them_after_a_check():
    # (the last evaluation's tensors stayed on the module: a float64 activation of a perturbed point)
    module = _Keeps()
    calls = module.calls
    report = bt.check_module(module, torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    assert report.status == "pass", report
    assert module.last is None and module.history == [] and not hasattr(module, "made_here")
    assert module.calls is calls and float(module.calls) == 0.0


class _Graph(torch.nn.Module):
    """A graph convolution keeping its adjacency as a sparse plain attribute."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2).double()
        dense = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
        self.adj = dense.double().to_sparse()

    def forward(self, z):
        return torch.sparse.mm(self.adj, self.lin(z))


def test_a_sparse_plain_attribute_is_read_and_left_as_it_was():
    # (putting plain attributes back compared the sparse tensor's values, which torch.equal does not take)
    module = _Graph()
    adj = module.adj
    report = bt.check_module(module, torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    assert report.status == "pass", report
    assert module.adj is adj and module.adj.layout == torch.sparse_coo


class _KeepsMore(torch.nn.Module):
    """Private lists, numpy statistics and tensors inside a list and a dict, all written in place by forward."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2).double()
        self._hist, self.stats = [], np.zeros(2)
        self.tlist, self.tdict = [torch.zeros(2, dtype=torch.float64)], {"m": torch.zeros(2, dtype=torch.float64)}

    def forward(self, z):
        y = self.lin(z)
        self._hist.append(1)
        self.stats += 1
        self.tlist[0].add_(y.detach().sum(0))
        self.tdict["m"].mul_(0.5).add_(y.detach().mean(0))
        return y


def test_private_attributes_arrays_and_tensors_in_containers_are_put_back():
    module = _KeepsMore()
    report = bt.check_module(module, torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    assert report.status == "pass", report
    assert module._hist == [] and not module.stats.any()
    assert not module.tlist[0].any() and not module.tdict["m"].any()
    assert module.lin.weight.dtype == torch.float64 and len(list(module.parameters())) == 2


class _Labelled(torch.nn.Module):
    """Holds arrays of strings and objects, and a meta tensor, beside its layer."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2).double()
        self.classes, self.tags = np.array(["cat", "dog"]), np.array([{"a": 1}, None], dtype=object)
        self.shape_only = torch.empty(2, 2, device="meta")

    def forward(self, z):
        return self.lin(z)


def test_attributes_torch_or_numpy_cannot_compare_are_left_alone():
    # (putting them back compared their values: numpy's equal_nan on strings and torch.equal on a meta tensor raised,
    # told as a bad argument)
    module = _Labelled()
    classes = module.classes
    report = bt.check_module(module, torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    assert report.status == "pass", report
    assert module.classes is classes and module.classes.tolist() == ["cat", "dog"]
