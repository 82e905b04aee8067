"""Gradient proxies against per-example autograd gradients of the last layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coreaug.data import ArrayDataset
from coreaug.errors import InputError
from coreaug.models import build_model, last_linear
from coreaug.proxies import compute_proxies



def _data(n=24, seed=0, classes=5):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    return ArrayDataset(images, labels, transform=lambda im: im.float() / 255.0)


def _autograd_grads(model, ds):
    fc = last_linear(model)
    gb, gw, losses = [], [], []
    model.eval()
    for i in range(len(ds)):
        x, y, _ = ds[i]
        loss = F.cross_entropy(model(x[None]), torch.tensor([y]))
        w, b = torch.autograd.grad(loss, [fc.weight, fc.bias])
        gb.append(b)
        gw.append(w.flatten())  # row-major (C, d) → class-major blocks
        losses.append(loss.detach())
    return torch.stack(gb), torch.stack(gw), torch.stack(losses)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_bias_and_weight_proxies_equal_autograd(name):
    torch.manual_seed(0)
    model = build_model(name, 5, in_channels=1, image_size=8)
    ds = _data()
    gb, gw, losses = _autograd_grads(model, ds)
    model.train()
    p = compute_proxies(model, ds, kind="bias", batch_size=7)
    assert model.training and all(m.training for m in model.modules())  # mode restored
    assert torch.allclose(p.features, gb, atol=1e-6)
    assert torch.allclose(p.losses, losses, atol=1e-5)
    assert torch.equal(p.labels, ds.targets) and torch.equal(p.indices, torch.arange(len(ds)))
    model.eval()
    q = compute_proxies(model, ds, kind="weight", batch_size=10)
    assert not model.training
    assert q.features.shape == (len(ds), gw.shape[1]) and q.features.dtype == torch.float32
    assert torch.allclose(q.features, gw, atol=1e-6)


def test_mixed_modes_are_restored_and_bn_stats_untouched():
    model = build_model("cnn", 5, in_channels=1, image_size=8)
    model.train()
    model.features[1].eval()  # one BN layer deliberately in eval mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compute_proxies(model, _data(), kind="bias")
    assert model.training and not model.features[1].training and model.features[4].training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weight_sketch_preserves_inner_products_in_expectation_and_is_seeded():
    torch.manual_seed(0)
    model = build_model("mlp", 5, in_channels=1, image_size=8)
    ds = _data(n=16)
    full = compute_proxies(model, ds, kind="weight").features.double()
    a = compute_proxies(model, ds, kind="weight", proj_dim=4096, seed=1).features.double()
    b = compute_proxies(model, ds, kind="weight", proj_dim=4096, seed=1).features
    assert a.shape == (16, 4096) and torch.equal(a.float(), b)
    g_full, g_sk = full @ full.T, a @ a.T
    rel = (g_sk - g_full).norm() / g_full.norm()
    assert rel < 0.15  # JL-type concentration at m = 4096


def test_ddp_like_wrapper_and_custom_model_without_fc_attribute():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU())
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.body(x))

    class Wrapper(nn.Module):  # mimics DistributedDataParallel's .module
        def __init__(self, m):
            super().__init__()
            self.module = m

    net = Net()
    ds = _data(classes=3)
    p = compute_proxies(Wrapper(net), ds, kind="weight")
    assert p.features.shape == (24, 24)
    gen = compute_proxies(net, ds, kind="weight")
    assert torch.equal(p.features, gen.features)


def test_bad_input():
    model = build_model("mlp", 3, in_channels=1, image_size=8)
    with pytest.raises(InputError, match="kind"):
        compute_proxies(model, _data(classes=3), kind="full")
    with pytest.raises(InputError, match="labels"):
        compute_proxies(model, _data(classes=5), kind="bias")
    with pytest.raises(InputError, match="proj_dim"):
        compute_proxies(model, _data(classes=3), kind="bias", proj_dim=8)
    model.train()
    with pytest.raises(InputError):
        compute_proxies(model, _data(classes=5))
    assert model.training  # restored on error too


def test_in_memory_fast_path_and_positions_match_the_loader_path_and_autograd():
    from coreaug.data.base import TensorDataset

    torch.manual_seed(0)
    model = build_model("cnn", 5, in_channels=1, image_size=8)
    ds = _data(n=30)
    mem = ds.materialize(lambda im: im.float() / 255.0)  # the loop's materialised eval view
    assert isinstance(mem, TensorDataset)
    gb, gw, losses = _autograd_grads(model, ds)
    for kind, ref in (("bias", gb), ("weight", gw)):
        a = compute_proxies(model, ds, kind=kind, batch_size=8)  # DataLoader path
        b = compute_proxies(model, mem, kind=kind, batch_size=8)  # sliced path
        assert torch.allclose(b.features, ref, atol=1e-6) and torch.allclose(b.losses, losses, atol=1e-5)
        assert torch.equal(a.features, b.features) and torch.equal(a.losses, b.losses)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.indices, b.indices)
    pos = torch.tensor([29, 3, 17, 0, 8, 11, 4])
    for d in (ds, mem):
        p = compute_proxies(model, d, kind="bias", batch_size=3, indices=pos)
        assert torch.equal(p.indices, pos) and torch.equal(p.labels, ds.targets[pos])
        assert torch.allclose(p.features, gb[pos], atol=1e-6) and torch.allclose(p.losses, losses[pos], atol=1e-5)


def test_default_batch_and_out_device_and_nonfinite_check_after_the_pass():
    model = build_model("mlp", 5, in_channels=1, image_size=8)
    ds = _data(n=300)
    p = compute_proxies(model, ds, out_device=None)  # auto batch (64 on CPU): 5 batches
    assert p.features.shape == (300, 5) and p.features.device.type == "cpu"
    assert torch.equal(p.features, compute_proxies(model, ds, batch_size=300).features)
    with torch.no_grad():
        last_linear(model).bias[0] = float("nan")
    model.train()
    with pytest.raises(InputError, match="NaN"):
        compute_proxies(model, ds)
    assert model.training
    with pytest.raises(InputError, match="empty"):
        compute_proxies(model, ds, indices=[])
