"""One reader of state-dict files (:func:`coreaug.io.read_state_dict`) behind every entry point that loads one:
``--weights`` for ``resnet18``, ``torchvision:<name>`` and ``timm:<name>`` (through ``build_model``), and
``--checkpoint`` (``coreaug.models.load_weights``). The same damaged file is refused by each with the same
one-line reason; the same good state dict, plain or wrapped, loads into each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch
import torchvision

import coreaug.io
from coreaug.cli import main
from coreaug.errors import CheckpointError
from coreaug.io import read_state_dict
from coreaug.models import build_model, load_weights

pytest.importorskip("timm")

CLASSES = 1000  # torchvision's and timm's resnet18 share one state-dict layout at 1000 classes

#: Entry point name → (noun the messages use for the file, loader of ``path`` returning the model).
ENTRY_POINTS: dict[str, tuple[str, Callable[[Path], torch.nn.Module]]] = {
    "resnet18": ("weights file", lambda p: build_model("resnet18", CLASSES, weights_path=p)),
    "torchvision:resnet18": ("weights file", lambda p: build_model("torchvision:resnet18", CLASSES, weights_path=p)),
    "timm:resnet18": ("weights file", lambda p: build_model("timm:resnet18", CLASSES, weights_path=p)),
    "load_weights": ("checkpoint", lambda p: load_weights(build_model("torchvision:resnet18", CLASSES), p)),
}


class _Payload:
    """Unpickling this runs ``touch <sentinel>``: what a crafted weights file would do under plain ``torch.load``."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def _reference() -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    return torchvision.models.resnet18(weights=None).state_dict()


def _damaged_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Name → (damaged path, the part of the message every entry point must give after the path)."""
    folder.mkdir()
    good = folder / "good.pt"
    torch.save(_reference(), good)
    files = {"missing": (folder / "nope.pt", " does not exist (no downloads are attempted)")}
    (folder / "adir.pt").mkdir()
    files["folder"] = (folder / "adir.pt", " is a folder, not a file")
    (folder / "garbage.pt").write_bytes(b"not a checkpoint")
    files["garbage"] = (folder / "garbage.pt", " is corrupted or unreadable (UnpicklingError)")
    (folder / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["truncated"] = (folder / "truncated.pt", " is corrupted or unreadable (")
    torch.save({"model": {"fc.weight": torch.zeros(2)}, "x": _Payload(folder / "PWNED")}, folder / "crafted.pt")
    files["crafted"] = (folder / "crafted.pt", " holds objects other than tensors and plain values (")
    torch.save([torch.zeros(2)], folder / "list.pt")
    files["list"] = (folder / "list.pt", " does not hold a state dictionary")
    torch.save({"epoch": 3, "fc.weight": torch.zeros(2)}, folder / "mixed.pt")
    files["not tensors"] = (folder / "mixed.pt", " does not hold a state dict of tensors (entry 'epoch' holds int")
    torch.save({"model": 5}, folder / "model5.pt")
    files["model not a dict"] = (folder / "model5.pt", " does not hold a state dict of tensors (entry 'model' holds")
    torch.save({0: torch.zeros(2)}, folder / "intkey.pt")
    files["int names"] = (folder / "intkey.pt", " does not hold a state dict of tensors (name 0 is not a string (int)")
    return files


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return _damaged_files(tmp_path_factory.mktemp("weights") / "damaged")


@pytest.mark.parametrize("case", ["missing", "folder", "garbage", "truncated", "crafted", "list", "not tensors",
                                  "model not a dict", "int names"])
def test_every_entry_point_rejects_a_damaged_file_with_the_same_line(damaged, case):
    path, reason = damaged[case]
    seen = {}
    for name, (noun, load) in ENTRY_POINTS.items():
        with pytest.raises(CheckpointError) as info:
            load(path)
        text = str(info.value)
        assert "\n" not in text and text.startswith(f"{noun} {path}{reason}"), (name, text)
        seen[name] = text[len(f"{noun} {path}"):]
    assert len(set(seen.values())) == 1, seen  # one reader: one reason, whatever the entry point
    assert not (path.parent / "PWNED").exists()  # the crafted file's code never ran


def test_every_entry_point_loads_the_same_state_dict_plain_or_wrapped(tmp_path):
    ref = _reference()
    forms = {"plain": ref, "train checkpoint": {"model": {f"module.{k}": v for k, v in ref.items()}, "epoch": 3},
             "lightning": {"state_dict": ref, "epoch": 1}}
    for form, state in forms.items():
        path = tmp_path / f"{form.replace(' ', '_')}.pt"
        torch.save(state, path)
        assert read_state_dict(path).keys() == ref.keys()
        for name, (_noun, load) in ENTRY_POINTS.items():
            model = load(path)
            got = model.backbone.state_dict() if name == "resnet18" else model.state_dict()
            if name == "resnet18":  # the project's wrapper keeps the classifier beside the backbone
                got = {**got, **{f"fc.{k}": v for k, v in model.fc.state_dict().items()}}
            assert got.keys() == ref.keys(), (form, name)
            for key, value in ref.items():
                assert torch.equal(got[key], value), (form, name, key)


def test_every_entry_point_reads_through_the_one_reader(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save(_reference(), path)
    calls: list[str] = []
    real = coreaug.io.read_state_dict

    def spy(p, **kw):
        calls.append(kw.get("what", "weights file"))
        return real(p, **kw)

    monkeypatch.setattr(coreaug.io, "read_state_dict", spy)
    for _noun, load in ENTRY_POINTS.values():
        load(path)
    assert calls == [noun for noun, _load in ENTRY_POINTS.values()]


def test_cli_weights_and_checkpoint_refuse_a_damaged_file_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    train = ["train", "--preset", "digits-quick", "--model", "resnet18", "--epochs", "1", "--fraction", "0.1",
             "--batch-size", "64", "--quiet", "--threads", "1", "--device", "cpu", "--diagnostics-every", "0"]
    lines = {}
    for noun, argv in {"weights file": [*train, "--weights", str(bad), "--out", str(tmp_path / "run")],
                       "checkpoint": ["select", "--model", "mlp", "--checkpoint", str(bad), "--out",
                                      str(tmp_path / "s.json")]}.items():
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        lines[noun] = err.strip()
        assert lines[noun].startswith(f"coreaug: error: {noun} {bad} is corrupted or unreadable"), err
    assert not (tmp_path / "s.json").exists()
