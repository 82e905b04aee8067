"""coreaug.integrations.lightning with a real ``lightning.Trainer`` on CPU: the callback serves the
epoch's coreset batches (reselecting at 0, R, 2R), the batches carry the weights, the steps per epoch
are ``coreset.steps_per_epoch``, diagnostics reach the CSV log, a checkpoint resumes the selection,
and (slow) DDP with two CPU processes agrees on the selection and shards the epoch disjointly."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import coreaug
from coreaug.errors import CoreaugError

pl = pytest.importorskip("lightning.pytorch")

from coreaug.integrations.lightning import AugmentedCoresetCallback, SpectralDiagnosticsCallback  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
N, CLASSES, DIM, BATCH = 90, 3, 12, 16


def make_data(n: int = N) -> torch.utils.data.TensorDataset:
    """Separable-ish clusters: (x, y) items."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % CLASSES
    x = torch.randn(n, DIM, generator=g) + 2.0 * nn.functional.one_hot(y, DIM).float()
    return torch.utils.data.TensorDataset(x, y)


def strong(x: torch.Tensor) -> torch.Tensor:
    """A deterministic 'strong augmentation' (keeps the shape)."""
    return x.flip(-1) * 0.5


class Module(pl.LightningModule):
    """A tiny classifier that records every batch it trains on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(DIM, 8), nn.ReLU(), nn.Linear(8, CLASSES))
        self.seen: list[dict] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y, w, *rest = batch
        self.seen.append({"epoch": self.current_epoch, "x": x.clone(), "w": w.clone(),
                          "index": rest[0].clone() if rest else None, "view": rest[1].clone() if rest else None})
        return coreaug.weighted_loss(self(x), y, w)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def make_coreset(**kw) -> coreaug.AugmentedCoreset:
    return coreaug.AugmentedCoreset(make_data(), strong=strong, fraction=0.2, reselect_every=2, seed=3, **kw)


def trainer(tmp_path: Path, epochs: int, callbacks: list, **kw) -> pl.Trainer:
    from lightning.pytorch.loggers import CSVLogger

    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                      enable_model_summary=False, logger=CSVLogger(str(tmp_path), name="logs"),
                      callbacks=callbacks, **kw)


def by_epoch(seen: list[dict], epoch: int) -> list[dict]:
    return [b for b in seen if b["epoch"] == epoch]


def test_callback_reselects_serves_weighted_batches_and_counts_steps(tmp_path):
    coreset = make_coreset()
    data = AugmentedCoresetCallback(coreset, batch_size=BATCH, with_index=True)
    module = Module()
    selections = {}

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            selections.setdefault(trainer.current_epoch, (coreset.indices.clone(), coreset.weights.clone()))

    t = trainer(tmp_path, 3, [data, Spy()], enable_checkpointing=False)
    t.fit(module, train_dataloaders=data.train_dataloader())

    assert data.reselected_at == [0, 2]  # R = 2: epochs 0 and 2, never 1
    assert coreset.selection.epoch == 2
    assert torch.equal(selections[0][0], selections[1][0]) and not torch.equal(selections[0][0], selections[2][0])
    steps = coreset.steps_per_epoch(BATCH)
    assert coreset.epoch_size() % BATCH != 0  # a partial last batch is counted too
    assert t.num_training_batches == steps
    for epoch in range(3):
        batches = by_epoch(module.seen, epoch)
        assert len(batches) == steps
        idx, gamma = selections[epoch]
        index = torch.cat([b["index"] for b in batches])
        view = torch.cat([b["view"] for b in batches])
        w = torch.cat([b["w"] for b in batches])
        # subset-only: S once weak (weight γ) and once strong (weight 1)
        assert sorted(index[view == 0].tolist()) == idx.tolist() == sorted(index[view == 1].tolist())
        weight_of = dict(zip(idx.tolist(), gamma.tolist()))
        assert torch.allclose(w[view == 0], torch.tensor([weight_of[i] for i in index[view == 0].tolist()]))
        assert torch.equal(w[view == 1], torch.ones(int((view == 1).sum())))
        assert not torch.allclose(gamma, torch.ones_like(gamma))  # the coreset's weights are not all 1
    assert t.global_step == 3 * steps


def test_diagnostics_rows_reach_the_csv_logger(tmp_path):
    coreset = make_coreset()
    data = AugmentedCoresetCallback(coreset, batch_size=BATCH)
    diag = SpectralDiagnosticsCallback(2, coreset=coreset, probe_size=12)
    t = trainer(tmp_path, 3, [data, diag], enable_checkpointing=False)
    t.fit(Module(), train_dataloaders=data.train_dataloader())

    assert [r["epoch"] for r in diag.rows] == [0, 2, 3]  # initialisation, K, the last epoch
    with open(Path(t.logger.log_dir) / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("diagnostics/epoch")]
    assert [float(r["diagnostics/epoch"]) for r in rows] == [0.0, 2.0, 3.0]
    for r in rows:
        assert float(r["diagnostics/sv_top1"]) > 0.0
        assert float(r["diagnostics/probe_size"]) == 12.0
        assert r["diagnostics/xi_subset_clean"] and r["diagnostics/xi_random_clean"]
        assert r["diagnostics/shift_top10"] != ""
    assert "coreset/selection_time" in rows[0]  # the coreset callback logs too


def test_diagnostics_from_a_plain_dataset_write_files(tmp_path):
    diag = SpectralDiagnosticsCallback(1, dataset=make_data(), strong=strong, probe_size=9, out_dir=tmp_path / "d")
    data = AugmentedCoresetCallback(make_coreset(), batch_size=BATCH, log=False)
    t = trainer(tmp_path, 1, [data, diag], enable_checkpointing=False)
    t.fit(Module(), train_dataloaders=data.train_dataloader())
    assert [r["epoch"] for r in diag.rows] == [0, 1]
    assert all(r["xi_subset_clean"] is None and r["sv_top1"] > 0 for r in diag.rows)  # no coreset: no ξ
    assert (tmp_path / "d" / "diagnostics.csv").read_text().count("\n") == 3


def test_checkpoint_resume_restores_the_selection(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpts = tmp_path / "ckpt"
    coreset_a = make_coreset()
    data_a = AugmentedCoresetCallback(coreset_a, batch_size=BATCH)
    module_a = Module()
    save = ModelCheckpoint(dirpath=ckpts, filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    trainer(tmp_path / "a", 2, [data_a, save]).fit(module_a, train_dataloaders=data_a.train_dataloader())
    assert data_a.reselected_at == [0]

    coreset_b = make_coreset()  # fresh: without the checkpoint it would select at epoch 1
    assert coreset_b.due(1)
    data_b = AugmentedCoresetCallback(coreset_b, batch_size=BATCH)
    module_b = Module()
    trainer(tmp_path / "b", 2, [data_b]).fit(module_b, train_dataloaders=data_b.train_dataloader(),
                                               ckpt_path=str(ckpts / "epoch=0.ckpt"))
    assert data_b.reselected_at == []  # epoch 1 trained on the restored selection of epoch 0
    assert torch.equal(coreset_b.indices, coreset_a.indices) and torch.equal(coreset_b.weights, coreset_a.weights)
    assert coreset_b.selection.epoch == 0
    a1, b1 = by_epoch(module_a.seen, 1), by_epoch(module_b.seen, 1)
    assert len(a1) == len(b1) and by_epoch(module_b.seen, 0) == []
    for a, b in zip(a1, b1):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["w"], b["w"])
    end_a = torch.load(ckpts / "epoch=1.ckpt", weights_only=True)["state_dict"]
    for k, v in module_b.state_dict().items():
        assert torch.allclose(v, end_a[k], atol=1e-6), k


def test_callback_checks_its_arguments_and_use(tmp_path):
    coreset = make_coreset()
    with pytest.raises(CoreaugError, match="batch_size"):
        AugmentedCoresetCallback(coreset, batch_size=0)
    with pytest.raises(CoreaugError, match="AugmentedCoreset"):
        AugmentedCoresetCallback(object(), batch_size=4)
    with pytest.raises(CoreaugError, match="coreset= .* or dataset="):
        SpectralDiagnosticsCallback(1)
    data = AugmentedCoresetCallback(coreset, batch_size=BATCH)
    assert len(data.train_dataloader()) == coreset.steps_per_epoch(BATCH)
    with pytest.raises(CoreaugError, match="callbacks="):
        next(iter(data.train_dataloader()))



DDP_SCRIPT = r'''
import json, os, sys
import torch
import lightning.pytorch as pl
sys.path.insert(0, {tests!r})
import test_integrations_lightning as T
from coreaug.integrations.lightning import AugmentedCoresetCallback, SpectralDiagnosticsCallback

out = sys.argv[1]
torch.set_num_threads(1)
coreset = T.make_coreset()
data = AugmentedCoresetCallback(coreset, batch_size=T.BATCH, with_index=True, log=False)
module = T.Module()
diag = SpectralDiagnosticsCallback(2, coreset=coreset, probe_size=12)  # rank 0 alone, mid-training
sels = {{}}

class Spy(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sels.setdefault(trainer.current_epoch, coreset.indices.tolist())

t = pl.Trainer(max_epochs=3, accelerator="cpu", devices=2, strategy="ddp", enable_progress_bar=False,
               enable_model_summary=False, logger=False, enable_checkpointing=False, callbacks=[data, diag, Spy()])
t.fit(module, train_dataloaders=data.train_dataloader())
seen = {{e: [[int(i), int(v)] for b in T.by_epoch(module.seen, e) for i, v in zip(b["index"], b["view"])]
        for e in range(3)}}
steps = {{e: len(T.by_epoch(module.seen, e)) for e in range(3)}}
with open(os.path.join(out, f"rank{{t.global_rank}}.json"), "w") as f:
    json.dump({{"sels": sels, "seen": seen, "steps": steps, "reselected": data.reselected_at,
               "expected_steps": coreset.steps_per_epoch(T.BATCH, world_size=2),
               "epoch_size": coreset.epoch_size(), "diag_epochs": [r["epoch"] for r in diag.rows]}}, f)
'''


@pytest.mark.slow
def test_ddp_two_cpu_ranks_agree_and_shard(tmp_path):
    from conftest import free_port

    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK"):
        env.pop(key, None)
    # its own session: a hung run (e.g. mismatched collectives) is killed with the rank Lightning launched
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail("the 2-rank DDP run hung (killed after 300 s): " + err[-2000:])
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["reselected"] == r1["reselected"] == [0, 2]
    assert r0["sels"] == r1["sels"] and r0["sels"]["0"] != r0["sels"]["2"]
    assert r0["diag_epochs"] == [0, 2, 3] and r1["diag_epochs"] == []  # diagnostics on rank 0 only
    assert r0["epoch_size"] % 2 == 0  # no DistributedSampler padding: the shards can be exactly disjoint
    for e in ("0", "1", "2"):
        assert r0["steps"][e] == r1["steps"][e] == r0["expected_steps"]
        s0, s1 = {tuple(p) for p in r0["seen"][e]}, {tuple(p) for p in r1["seen"][e]}
        assert len(s0) == len(r0["seen"][e]) and not s0 & s1
        sel = r0["sels"][e]
        assert s0 | s1 == {(i, v) for i in sel for v in (0, 1)}  # together: S weak + S strong, once each


def test_estimated_stepping_batches_counts_coreset_steps(tmp_path):
    """A step-counting schedule sized in configure_optimizers (OneCycleLR's total_steps) sees coreset epochs."""
    sized = {}

    class Scheduled(Module):
        def configure_optimizers(self):
            sized["total"] = self.trainer.estimated_stepping_batches
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=int(sized["total"]))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    coreset = make_coreset()
    data = AugmentedCoresetCallback(coreset, batch_size=BATCH, log=False)
    t = trainer(tmp_path, 2, [data], enable_checkpointing=False)
    t.fit(Scheduled(), train_dataloaders=data.train_dataloader())  # OneCycleLR raises if stepped past total_steps
    assert sized["total"] == 2 * coreset.steps_per_epoch(BATCH) == t.global_step
    assert data.reselected_at == [0]


def test_diagnostics_xi_subset_is_the_run_selection_step_on_the_probe(tmp_path):
    """The callback's (S, γ) on the probe is what coreaug train's diagnostics pick for the same settings
    (coreaug.train.subsets.select_subset with the probe as training set), here at epoch 0 (the initial model)."""
    from coreaug.data.base import TensorDataset
    from coreaug.train.config import TrainConfig
    from coreaug.train.subsets import select_subset

    coreset = make_coreset()
    diag = SpectralDiagnosticsCallback(5, coreset=coreset, probe_size=15)
    data = AugmentedCoresetCallback(coreset, batch_size=BATCH, log=False)
    trainer(tmp_path, 1, [data, diag], enable_checkpointing=False).fit(
        Module(), train_dataloaders=data.train_dataloader())
    row = diag.rows[0]
    assert row["epoch"] == 0 and row["subset_size"] == len(row["subset_indices"]) > 0
    probe = diag.diagnostics.probe
    cfg = TrainConfig(selector="coreset", fraction=0.2, seed=3, method="subset-only", reselect_every=2)
    state = select_subset(cfg, Module(), TensorDataset(probe.x, probe.y), epoch=0, device=torch.device("cpu"))
    assert row["subset_indices"] == state.indices.tolist()
    assert row["subset_weights"] == pytest.approx(state.weights.double().tolist())


def test_diagnostics_out_dir_is_output_only_a_stale_file_there_is_overwritten(tmp_path):
    """A fresh fit into an out_dir that holds another run's (here: damaged) diagnostics.jsonl measures epoch 0
    itself and overwrites the file; rows come from the callback's own state, never from files it did not write."""
    out = tmp_path / "d"
    out.mkdir()
    (out / "diagnostics.jsonl").write_text('{"epoch": 0, "sv_top1": 123.0}\nnot json\n')
    diag = SpectralDiagnosticsCallback(1, dataset=make_data(), strong=strong, probe_size=9, out_dir=out)
    data = AugmentedCoresetCallback(make_coreset(), batch_size=BATCH, log=False)
    t = trainer(tmp_path, 1, [data, diag], enable_checkpointing=False)
    t.fit(Module(), train_dataloaders=data.train_dataloader())
    assert [r["epoch"] for r in diag.rows] == [0, 1] and diag.rows[0]["sv_top1"] != 123.0
    written = [json.loads(line) for line in (out / "diagnostics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in written] == [0, 1] and written[0]["sv_top1"] == diag.rows[0]["sv_top1"]
