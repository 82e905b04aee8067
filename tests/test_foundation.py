"""Foundation: digits data, models, augmentations, device selection, atomic I/O, CLI errors."""

from __future__ import annotations

import pytest
import torch

from coreaug.augment import STRONG_AUGMENTATIONS, WEAK_AUGMENTATIONS, AdditiveNoise, build_transform
from coreaug.cli import main
from coreaug.data import load_data
from coreaug.data.base import ArrayDataset
from coreaug.device import resolve_device
from coreaug.errors import CheckpointError, ConfigError, DataError, DatasetNotFoundError, DeviceError
from coreaug.io import load_checkpoint, save_checkpoint, write_json_atomic
from coreaug.models import MODELS, build_model, last_linear


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def test_digits_split_is_deterministic_stratified_and_disjoint(digits):
    again = load_data("digits")
    assert torch.equal(digits.train.targets, again.train.targets)
    assert torch.equal(digits.train.images, again.train.images)
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.train.images.shape[1:] == (1, 8, 8) and digits.train.images.dtype == torch.uint8
    counts = torch.bincount(digits.train.targets, minlength=10).float()
    assert counts.min() / counts.max() > 0.9  # stratified: classes nearly balanced
    train_rows = {tuple(r.tolist()) for r in digits.train.images.flatten(1)}
    test_rows = [tuple(r.tolist()) for r in digits.test.images.flatten(1)]
    # The raw digits data contains a few exact duplicate images; the split itself must not copy rows.
    assert sum(r in train_rows for r in test_rows) < 0.05 * len(test_rows)


def test_dataset_returns_index_and_views_share_storage(digits):
    x, y, i = digits.train[17]
    assert i == 17 and y == int(digits.train.targets[17]) and torch.equal(x, digits.train.images[17])
    t = build_transform(image_size=8, mean=digits.mean, std=digits.std)
    view = digits.train.with_transform(t)
    assert view.images.data_ptr() == digits.train.images.data_ptr()
    xv, yv, iv = view[17]
    assert xv.dtype == torch.float32 and (yv, iv) == (y, 17)
    assert digits.train.transform is None  # the original is untouched


def test_array_dataset_rejects_bad_shapes():
    with pytest.raises(DataError, match="uint8"):
        ArrayDataset(torch.zeros(2, 1, 4, 4), [0, 1])
    with pytest.raises(DataError, match="targets"):
        ArrayDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 1, 2])
    with pytest.raises(DataError, match="shape"):
        ArrayDataset(torch.zeros(2, 4, 4, dtype=torch.uint8), [0, 1])


def test_unknown_dataset_and_missing_root():
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_data("mnist-xyz")
    with pytest.raises(DatasetNotFoundError, match="--data-root"):
        load_data("cifar10")


@pytest.mark.parametrize("name", MODELS)
def test_models_forward_and_convention(name):
    c, s = (3, 32) if name.startswith("resnet") else (1, 8)
    if name in ("resnet18", "resnet50"):
        s = 64  # keep the test light; torchvision ResNets pool adaptively
    model = build_model(name, num_classes=7, in_channels=c, image_size=s).eval()
    x = torch.randn(2, c, s, s)
    with torch.no_grad():
        out = model(x)
        emb = model.embed(x)
    assert out.shape == (2, 7)
    fc = last_linear(model)
    assert emb.shape == (2, fc.in_features)
    torch.testing.assert_close(fc(emb), out)


def test_cifar_resnets_have_6n_plus_2_layers():
    for name, n in [("resnet20", 3), ("resnet32", 5), ("resnet56", 9)]:
        model = build_model(name, 10)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(convs) + 1 == 6 * n + 2 - 0  # 3x3 convs + fc = 6n+2 weighted layers


def test_resnet_on_digits_shape():
    model = build_model("resnet20", 10, in_channels=1, image_size=8).eval()
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_unknown_model_and_bad_weights(tmp_path):
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("vgg", 10)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_model("resnet18", 10, weights_path=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        build_model("resnet18", 10, weights_path=bad)


def test_local_weights_are_loaded_and_classifier_reset(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    model = build_model("resnet18", 5, weights_path=path)
    torch.testing.assert_close(model.backbone.conv1.weight, ref.conv1.weight)
    assert model.fc.out_features == 5


@pytest.mark.parametrize("channels,size", [(1, 8), (3, 32)])
@pytest.mark.parametrize("strong", STRONG_AUGMENTATIONS)
def test_every_strong_augmentation_runs(channels, size, strong):
    torch.manual_seed(0)
    img = torch.randint(0, 256, (channels, size, size), dtype=torch.uint8)
    t = build_transform(image_size=size, mean=[0.5] * channels, std=[0.25] * channels, weak="cropflip", strong=strong)
    out = t(img)
    assert out.shape == (channels, size, size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_augmentations_change_the_image():
    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    plain = build_transform(image_size=32, mean=None, std=None)(img)
    for strong in ("autoaugment", "randaugment", "augmix", "randomerasing", "gaussian-noise"):
        outs = [build_transform(image_size=32, mean=None, std=None, strong=strong)(img) for _ in range(4)]
        assert any(not torch.allclose(o, plain) for o in outs), strong


def test_unknown_augmentation_names():
    with pytest.raises(ConfigError, match="unknown strong augmentation"):
        build_transform(image_size=8, mean=None, std=None, strong="mixup")
    with pytest.raises(ConfigError, match="unknown weak augmentation"):
        build_transform(image_size=8, mean=None, std=None, weak="jitter")
    assert "none" in WEAK_AUGMENTATIONS


@pytest.mark.parametrize("kind,ord_", [("gaussian", 2), ("uniform", float("inf"))])
def test_additive_noise_respects_its_norm_bound(kind, ord_):
    torch.manual_seed(0)
    noise = AdditiveNoise(kind, eps=0.3)
    x = torch.full((3, 16, 16), 0.5)  # far from the clamp edges, so δ is not clipped
    for _ in range(20):
        delta = (noise(x) - x).flatten()
        assert torch.linalg.vector_norm(delta, ord=ord_) <= 0.3 + 1e-6
        assert delta.abs().max() > 0
    with pytest.raises(ConfigError):
        AdditiveNoise(kind, eps=-1.0)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")


def test_atomic_checkpoint_roundtrip_and_corruption(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"epoch": 3, "w": torch.arange(4)})
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.arange(4))
    path.write_bytes(path.read_bytes()[:20])  # truncate: a crash mid-copy, a bad disk
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_atomic_json_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert path.read_text().strip().startswith("{") and '"a": 1' in path.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_help_and_info(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "info" in capsys.readouterr().out
    assert main(["info", "--device", "cpu"]) == 0
    assert "digits" in capsys.readouterr().out


def test_cli_project_error_is_one_line_exit_2(capsys):
    code = main(["info", "--device", "tpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("coreaug: error:") and err.count("\n") == 1


def test_dataset_options_are_validated_and_passed_through():
    with pytest.raises(ConfigError, match="takes no option"):
        load_data("digits", bogus=1)
    a, b = load_data("digits", split_seed=0), load_data("digits", split_seed=1)
    assert not torch.equal(a.train.targets, b.train.targets)


def test_train_config_data_options_reach_the_loader():
    from coreaug.train import resolve_config
    from coreaug.train.loop import prepare_data

    cfg = resolve_config("digits-quick", None, {"data_options": {"test_fraction": 0.5}})
    bundle, _ = prepare_data(cfg)
    assert len(bundle.test) > 800
    with pytest.raises(ConfigError, match="takes no option"):
        prepare_data(resolve_config("digits-quick", None, {"data_options": {"nope": 1}}))


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_materialized_eval_view_equals_per_image_transform(digits):
    from coreaug.data.base import TensorDataset

    t = build_transform(image_size=8, mean=digits.mean, std=digits.std)
    lazy = digits.train.with_transform(t)
    eager = digits.train.materialize(t, chunk=100)  # several chunks
    assert isinstance(eager, TensorDataset) and len(eager) == len(lazy)
    for i in (0, 99, 100, 1436):
        xl, yl, il = lazy[i]
        xe, ye, ie = eager[i]
        torch.testing.assert_close(xe, xl, rtol=0, atol=1e-6)
        assert (ye, ie) == (yl, il)
    with pytest.raises(DataError):
        eager.with_transform(t)


def test_load_weights_accepts_checkpoints_state_dicts_and_ddp_prefixes(tmp_path):
    from coreaug.models import load_weights

    torch.manual_seed(1)
    src = build_model("mlp", 10, in_channels=1, image_size=8)
    for i, state in enumerate([{"model": src.state_dict()}, src.state_dict(),
                               {"model": {f"module.{k}": v for k, v in src.state_dict().items()}}]):
        path = tmp_path / f"w{i}.pt"
        save_checkpoint(path, state)
        dst = load_weights(build_model("mlp", 10, in_channels=1, image_size=8), path)
        torch.testing.assert_close(dst.fc.weight, src.fc.weight)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights(build_model("cnn", 10, in_channels=1, image_size=8), tmp_path / "w0.pt")


def test_stratified_indices_balance_size_and_top_up():
    from coreaug.data.base import stratified_indices

    y = torch.arange(10).repeat_interleave(30)
    idx = stratified_indices(y, 50, seed=3)
    assert idx.numel() == 50 and idx.unique().numel() == 50
    assert torch.bincount(y[idx], minlength=10).tolist() == [5] * 10
    assert torch.equal(idx, stratified_indices(y, 50, seed=3))
    small = torch.tensor([0] * 2 + [1] * 20)
    got = stratified_indices(small, 10, seed=0)  # class 0 cannot give 5: topped up from class 1
    assert got.numel() == 10 and torch.bincount(small[got]).tolist() == [2, 8]
