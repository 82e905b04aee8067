"""Models by name from the ecosystem (``timm:<name>``, ``torchvision:<name>``): names and validation,
building at tiny input sizes, local weights, the proxy pass against softmax − onehot by hand, every
selector on their proxies, and ``coreaug train`` / ``coreaug spectra`` end to end. Random init only."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coreaug.cli import main
from coreaug.data import ArrayDataset
from coreaug.errors import CheckpointError, ConfigError
from coreaug.models import build_model, check_model_name, classifier_layer, last_linear
from coreaug.proxies import compute_proxies
from coreaug.select import SELECTION_METHODS, ForgettingTracker, get_selector, select
from coreaug.train.config import read_config_file, resolve_config

pytest.importorskip("timm")

TIMM = "timm:resnet10t"
TORCHVISION = "torchvision:resnet18"
N, CLASSES, SIZE = 16, 4, 32


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def _dataset(n: int = N, channels: int = 1, size: int = SIZE) -> ArrayDataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.arange(n) % CLASSES
    return ArrayDataset(images, labels, transform=lambda im: im.float() / 255.0)


# ------------------------------------------------------------------ names and validation
def test_names_are_checked_with_one_line_errors(tmp_path):
    check_model_name("timm:resnet10t")
    check_model_name("torchvision:resnet18")
    check_model_name("CNN")
    with pytest.raises(ConfigError, match="unknown timm model 'resnet10'.*did you mean resnet10t") as e:
        check_model_name("timm:resnet10")
    assert "timm.list_models" in _one_line(e)
    with pytest.raises(ConfigError, match="unknown torchvision model 'resnet19'") as e:
        build_model("torchvision:resnet19", 10)
    assert "torchvision.models.list_models" in _one_line(e)
    with pytest.raises(ConfigError, match="unknown model prefix 'keras'"):
        check_model_name("keras:resnet50")
    with pytest.raises(ConfigError, match="names no architecture"):
        check_model_name("timm:")
    with pytest.raises(ConfigError, match="unknown model 'vgg'.*timm:<name>"):
        check_model_name("vgg")
    with pytest.raises(ConfigError, match="--weights is only supported for resnet18/resnet50, timm:<name>"):
        build_model("cnn", 10, weights_path=tmp_path / "w.pt")
    # a config file (or preset) may name an ecosystem model; validation accepts or rejects it
    good = tmp_path / "good.yaml"
    good.write_text("dataset: digits\nmodel: timm:resnet10t\n")
    assert read_config_file(good)["model"] == "timm:resnet10t"
    assert resolve_config(config_file=good).model == "timm:resnet10t"
    tv = "torchvision:mobilenet_v3_small"
    assert resolve_config(overrides={"model": tv}).model == tv
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: timm:no_such_net\n")
    with pytest.raises(ConfigError, match="unknown timm model 'no_such_net'"):
        resolve_config(config_file=bad)


def test_missing_timm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # "import timm" now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[timm\]"') as e:
        check_model_name("timm:resnet10t")
    assert "coreaug[timm]" in _one_line(e)
    check_model_name("torchvision:resnet18")  # torchvision names never need timm


# ------------------------------------------------------------------ building and the classifier
def test_timm_and_torchvision_build_at_tiny_sizes():
    vit = build_model("timm:test_vit", CLASSES, in_channels=3, image_size=SIZE)
    assert vit.patch_embed.img_size == (SIZE, SIZE)  # ViTs get img_size
    assert classifier_layer(vit) is vit.get_classifier()
    with pytest.raises(ConfigError, match=r"cannot run on 3x8x8 inputs.*pick a model that fits") as e:
        build_model("timm:test_vit", CLASSES, in_channels=3, image_size=8)  # patch 16 > 8
    _one_line(e)
    net = build_model(TORCHVISION, CLASSES, in_channels=1, image_size=8)  # digits' native size
    assert net.conv1.in_channels == 1 and net(torch.zeros(2, 1, 8, 8)).shape == (2, CLASSES)
    assert build_model(TIMM, CLASSES, in_channels=1, image_size=SIZE).conv1[0].in_channels == 1
    with pytest.raises(ConfigError, match="torchvision:squeezenet1_0 has no nn.Linear classifier") as e:
        build_model("torchvision:squeezenet1_0", CLASSES, image_size=SIZE)  # a conv classifier
    _one_line(e)
    with pytest.raises(ConfigError, match="does not produce the logits"):  # eval output = mean of two heads
        build_model("timm:deit_tiny_distilled_patch16_224", CLASSES, image_size=SIZE)


class _HeadFirst(nn.Module):
    """A classifier registered before another Linear (e.g. an auxiliary projection)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 2)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def test_classifier_layer_prefers_get_classifier():
    net = _HeadFirst()
    assert classifier_layer(net) is net.head and last_linear(net) is net.head
    net.get_classifier = lambda: nn.Identity()  # not a Linear (e.g. num_classes=0): the last Linear
    assert classifier_layer(net) is net.aux


# ------------------------------------------------------------------ local weights
def test_local_weights_load_finetune_and_mismatch(tmp_path):
    torch.manual_seed(1)
    ref = build_model("torchvision:mobilenet_v3_small", CLASSES, in_channels=1, image_size=SIZE)
    same = tmp_path / "same.pt"
    torch.save(ref.state_dict(), same)
    torch.manual_seed(2)
    got = build_model("torchvision:mobilenet_v3_small", CLASSES, in_channels=1, image_size=SIZE, weights_path=same)
    for (k, a), b in zip(ref.state_dict().items(), got.state_dict().values()):
        assert torch.equal(a, b), k
    ckpt = tmp_path / "ckpt.pt"  # a `coreaug train` checkpoint: the "model" entry, DDP prefix stripped
    torch.save({"model": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 3}, ckpt)
    got = build_model("torchvision:mobilenet_v3_small", CLASSES, in_channels=1, image_size=SIZE, weights_path=ckpt)
    assert torch.equal(got.features[0][0].weight, ref.features[0][0].weight)
    # fine-tuning: an RGB 1000-class state dict into a 1-channel 4-class model (stem summed, new classifier)
    rgb = build_model("torchvision:mobilenet_v3_small", 1000, in_channels=3, image_size=SIZE)
    path = tmp_path / "imagenet_like.pt"
    torch.save(rgb.state_dict(), path)
    tuned = build_model("torchvision:mobilenet_v3_small", CLASSES, in_channels=1, image_size=SIZE, weights_path=path)
    torch.testing.assert_close(tuned.features[0][0].weight, rgb.features[0][0].weight.sum(1, keepdim=True))
    assert torch.equal(tuned.classifier[0].weight, rgb.classifier[0].weight)
    assert classifier_layer(tuned).out_features == CLASSES
    # another architecture: one line naming what does not fit
    other = tmp_path / "other.pt"
    torch.save(build_model("timm:test_resnet", CLASSES, in_channels=1, image_size=SIZE).state_dict(), other)
    with pytest.raises(CheckpointError, match=r"does not fit torchvision:mobilenet_v3_small: \d+ missing key") as e:
        build_model("torchvision:mobilenet_v3_small", CLASSES, in_channels=1, image_size=SIZE, weights_path=other)
    _one_line(e)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_model(TIMM, CLASSES, weights_path=tmp_path / "nope.pt")


# ------------------------------------------------------------------ proxy pass and every selector
@pytest.fixture(scope="module", params=[TIMM, TORCHVISION])
def model_and_proxies(request):
    torch.manual_seed(0)
    model = build_model(request.param, CLASSES, in_channels=1, image_size=SIZE)
    ds = _dataset()
    needs = {"probs", "embedding", "grad_norm"}
    return request.param, model, ds, compute_proxies(model, ds, kind="bias", batch_size=5, needs=needs)


def test_proxies_are_softmax_minus_onehot(model_and_proxies):
    name, model, ds, prox = model_and_proxies
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    model.eval()
    with torch.no_grad():
        logits = model(x)
    onehot = F.one_hot(ds.targets, CLASSES).float()
    torch.testing.assert_close(prox.features, logits.softmax(1) - onehot, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(prox.probs, logits.softmax(1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(prox.losses, F.cross_entropy(logits, ds.targets, reduction="none"), atol=1e-5,
                               rtol=1e-4)
    fc = classifier_layer(model)
    assert prox.embeddings.shape == (N, fc.in_features), name  # flat (n, d) embeddings
    with torch.no_grad():
        torch.testing.assert_close(fc(prox.embeddings), logits, atol=1e-4, rtol=1e-4)


def test_every_selector_runs_on_their_proxies(model_and_proxies):
    name, _, _, prox = model_and_proxies
    history = ForgettingTracker(N)
    history.update(torch.arange(N), prox.probs.argmax(1) == prox.labels)
    inputs = dict(features=prox.features, losses=prox.losses, probs=prox.probs, embeddings=prox.embeddings,
                  grad_norms=prox.grad_norms, history=history)
    for method in SELECTION_METHODS:
        sel = select(method, labels=prox.labels, fraction=0.5, seed=0, **inputs)
        idx = sel.indices
        assert idx.numel() > 0 and torch.equal(idx, torch.unique(idx)) and int(idx.max()) < N, (name, method)
        assert sel.weights.shape == idx.shape and bool((sel.weights >= 0).all()), (name, method)
        if method != "craig_pb":  # whole mini-batches
            assert torch.bincount(prox.labels[idx], minlength=CLASSES).tolist() == [2] * CLASSES, (name, method)
        if not get_selector(method).weighted:
            assert bool((sel.weights == 1).all())


# ------------------------------------------------------------------ the CLI
def test_train_cli_timm_with_weights_and_diagnostics(tmp_path, capsys):
    torch.manual_seed(3)
    weights = tmp_path / "w.pt"
    torch.save(build_model("timm:test_resnet", 10, in_channels=1, image_size=8).state_dict(), weights)
    cfg = tmp_path / "cfg.yaml"  # digits at their native 1x8x8: the model is built for that size
    cfg.write_text("dataset: digits\nmodel: timm:test_resnet\nepochs: 1\n"
                   "fraction: 0.1\nbatch_size: 64\ndiagnostics_every: 1\ndiagnostics_probe: 8\n"
                   "diagnostics_params: all\n")  # the Jacobian of every timm parameter
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--weights", str(weights), "--out", str(out), "--quiet",
                 "--threads", "1", "--device", "cpu"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "timm:test_resnet" and saved["weights"] == str(weights)
    rows = (out / "diagnostics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].split(",")[0] == "0" and rows[2].split(",")[0] == "1"  # epochs 0 and 1
    assert "final test acc" in capsys.readouterr().out
    # a mismatching state dict stops the run with one line
    bad = tmp_path / "bad.pt"
    torch.save({"fc.weight": torch.zeros(10, 3)}, bad)
    assert main(["train", "--config", str(cfg), "--weights", str(bad), "--out", str(tmp_path / "run2"), "--quiet",
                 "--threads", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit timm:test_resnet" in err[0], err


def test_spectra_cli_torchvision(tmp_path, capsys):
    out = tmp_path / "spec"
    assert main(["spectra", "--model", TORCHVISION, "-n", "6", "--params", "last", "--perturb", "random",
                 "--rank", "3", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    report = json.loads((out / "spectra.json").read_text())
    assert report["model"] == TORCHVISION and report["num_params"] == 512 * 10 + 10  # its fc on digits
    cond = report["conditions"]["random-l2-eps0.5"]
    assert all(check["holds"] for check in cond["checks"].values())
    assert "bounds hold: True" in capsys.readouterr().out
