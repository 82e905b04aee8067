"""The public API costs nothing: a plain loop on ``coreaug.AugmentedCoreset`` vs ``coreaug train``'s loop.

Both arms train the same thing — the views of ``coreaug.train.loop.prepare_data(cfg)`` (weak main set,
strong copies, the un-augmented ``eval_train`` view for the proxy pass), the model of
``coreaug.models.build_model``, SGD + MultiStepLR as in the loop, the same batch size, epochs and
seeds — once through the real loop (``coreaug.train.loop.train(cfg, out_dir, quiet=True)``) and once
through the plain loop below, which a user would write on the public API::

    for x, y, w in coreset.loader(model, epoch, batch_size=cfg.batch_size):   # reselects when due
        loss = coreaug.weighted_loss(model(x), y, w)
        optimizer.zero_grad(set_to_none=True); loss.backward(); optimizer.step()

Per-epoch time = training + selection wall-clock, evaluation excluded: the loop's ``train_time +
selection_time`` of each metrics row; the plain loop uses the same two clocks: ``coreset.update(model,
epoch)`` (selects when due), then the batches up to ``scheduler.step()``. Neither counts building the
epoch's DataLoader (``loader()`` after the selection), evaluation or the loop's checkpoint. The plain
loop seeds every epoch as the loop does (``seed_everything(derive_seed(seed, epoch, 0))``) and
iterates ``loader(..., with_index=True)`` through a disabled ``tqdm.auto`` bar as the loop does, so
both make the same draws and their final
weights are compared bit for bit (``identical weights``: the two arms did the same work). Both are
needed for the same batch order: ``tqdm.auto``'s class calls ``iter()`` once in its constructor and
again to iterate; with ``with_index=True`` each call makes a DataLoader iterator, which draws a base
seed from the loader's seeded generator, so the order then differs from a loop without the bar (with
``with_index=False`` the first ``iter()`` only makes a lazy generator and draws nothing).

Cases: (i) ``digits-quick`` (small CNN, 30% coresets, R = 2, 12 epochs) with diagnostics off; (ii) a
ResNet-20 on CIFAR-shaped synthetic data (``_cifar_shaped.write_cifar10``, 5,000 training images),
the ``cifar10-resnet20`` preset (10% ``subset-only``, R = 1) for 2 epochs. One torch thread; the arms
run interleaved (round i: loop then plain for even i, plain then loop for odd i), ``--repeats`` each,
after an untimed 1-epoch warm-up of both arms per case (numba compiles the greedy on its first call in a
process). Reported: the median and the minimum per-epoch time of each arm, their ratios plain / loop
and the median of the per-round ratios (target ≤ 1.05), and
the peak RSS above the level before each run (``_memory.RssHighWater``, the kernel's high-water mark;
no sampling thread, so it can wrap timed runs). The load average is recorded with every run.

    python benchmarks/bench_api_overhead.py                        # both cases, 7 repeats (5-10 min)
    python benchmarks/bench_api_overhead.py --cases digits --repeats 2 --out-dir /tmp/ovh   # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import coreaug
from coreaug.device import resolve_eval_batch_size
from coreaug.io import csv_text, strict_json_value, write_text_atomic
from coreaug.models import build_model
from coreaug.runtime import derive_seed, seed_everything
from coreaug.train.config import TrainConfig, resolve_config
from coreaug.train.loop import evaluate, prepare_data, train

from _cifar_shaped import write_cifar10
from _memory import RssHighWater

FIELDS = ["case", "arm", "round", "epochs", "epoch_time_s", "epoch_times_s", "selection_s", "final_test_acc",
          "peak_rss_mib", "load_1min"]


def loop_run(cfg: TrainConfig) -> dict:
    """``coreaug train``'s loop; per-epoch train + selection seconds from its metrics rows."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_api_overhead_") as tmp:
        out = Path(tmp) / "run"
        with RssHighWater() as hw:
            res = train(cfg, out, quiet=True, on_epoch_end=rows.append)
        state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    return {"epoch_times": [r["train_time"] + r["selection_time"] for r in rows],
            "selection_s": sum(r["selection_time"] for r in rows), "final_test_acc": res["final_test_acc"],
            "peak": hw.peak, "state": state}


def plain_run(cfg: TrainConfig, quiet: bool = True) -> dict:
    """The same training in a plain PyTorch loop on the public API (with a progress bar, off when ``quiet``)."""
    with RssHighWater() as hw:
        bundle, views = prepare_data(cfg)
        seed_everything(cfg.seed)  # as the loop: the model's initialisation
        model = build_model(cfg.model, bundle.num_classes, in_channels=bundle.in_channels,
                            image_size=cfg.image_size or bundle.image_size, weights_path=cfg.weights)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.lr_gamma)
        coreset = coreaug.AugmentedCoreset(
            views["weak"], strong=views["strong"], proxy_dataset=views["eval_train"], regime=cfg.method,
            selector=cfg.selector, fraction=cfg.fraction, reselect_every=cfg.reselect_every, seed=cfg.seed,
            per_class=cfg.per_class, proxy=cfg.proxy, proxy_pool=cfg.proxy_pool, aug_weight=cfg.aug_weight,
            proxy_batch_size=cfg.eval_batch_size, num_classes=bundle.num_classes)
        epoch_times, acc, cpu = [], 0.0, torch.device("cpu")
        for epoch in range(cfg.epochs):
            seed_everything(derive_seed(cfg.seed, epoch, 0))  # as the loop: the augmentations' draws
            start = time.perf_counter()
            coreset.update(model, epoch)  # reselect when due (loader() would too): the loop's selection clock
            selection = time.perf_counter() - start
            batches = coreset.loader(model, epoch, batch_size=cfg.batch_size, with_index=True)  # untimed, as the loop
            model.train()
            loss_sum = torch.zeros((), dtype=torch.float64)
            start = time.perf_counter()
            for x, y, w, _index, _view in tqdm(batches, desc=f"epoch {epoch + 1}", disable=quiet):  # as the loop
                loss = coreaug.weighted_loss(model(x), y, w)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().double() * y.numel()  # a running loss, as any loop keeps
            scheduler.step()
            epoch_times.append(selection + time.perf_counter() - start)
            _, acc, _ = evaluate(model, views["test"], batch_size=resolve_eval_batch_size(cfg.eval_batch_size, cpu),
                                 device=cpu, num_classes=bundle.num_classes)  # not timed, as in the loop
    return {"epoch_times": epoch_times, "selection_s": coreset.selection_time, "final_test_acc": acc,
            "peak": hw.peak, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


ARMS = {"coreaug train": loop_run, "plain loop": plain_run}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def case_configs(names: list[str], args, tmp: Path) -> dict[str, TrainConfig]:
    common = {"device": "cpu", "threads": args.threads, "num_workers": 0, "seed": 0, "diagnostics_every": 0}
    cases = {}
    if "digits" in names:
        cases["digits CNN (digits-quick)"] = resolve_config("digits-quick", overrides=common)
    if "resnet20" in names:
        root = write_cifar10(tmp / "cifar", args.n_train, args.n_test, seed=0)
        cases[f"ResNet-20, CIFAR-shaped {args.n_train} images, 10% subset-only"] = resolve_config(
            "cifar10-resnet20", overrides={**common, "data_root": str(root), "epochs": args.resnet_epochs,
                                           "milestones": [], "fraction": 0.1, "method": "subset-only"})
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="digits,resnet20", help="comma-separated: digits, resnet20")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs of each arm per case (default 7)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--n-train", type=int, default=5000, help="CIFAR-shaped training images (default 5000)")
    ap.add_argument("--n-test", type=int, default=500, help="CIFAR-shaped test images (default 500)")
    ap.add_argument("--resnet-epochs", type=int, default=2, help="epochs of the ResNet-20 case (default 2)")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "results"))
    ap.add_argument("--tag", default="api_overhead", help="result file stem (default api_overhead)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    load_start = [round(v, 2) for v in os.getloadavg()]
    rows, summary = [], []
    with tempfile.TemporaryDirectory(prefix="api_overhead_data_") as tmp:
        cases = case_configs(args.cases.split(","), args, Path(tmp))
        for case, cfg in cases.items():
            # untimed warm-up of both arms (1 epoch): numba's first compilation, first imports, allocator growth
            warm = dataclasses.replace(cfg, epochs=1)
            loop_run(warm), plain_run(warm)
            runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
            for rnd in range(args.repeats):
                order = list(ARMS) if rnd % 2 == 0 else list(ARMS)[::-1]
                for arm in order:
                    r = ARMS[arm](cfg)
                    r["load"] = round(os.getloadavg()[0], 2)
                    runs[arm].append(r)
                    rows.append({"case": case, "arm": arm, "round": rnd, "epochs": cfg.epochs,
                                 "epoch_time_s": round(statistics.fmean(r["epoch_times"]), 4),
                                 "epoch_times_s": " ".join(f"{t:.3f}" for t in r["epoch_times"]),
                                 "selection_s": round(r["selection_s"], 3), "final_test_acc": r["final_test_acc"],
                                 "peak_rss_mib": None if r["peak"] is None else round(r["peak"] / 2**20, 1),
                                 "load_1min": r["load"]})
                    print(f"{case} | {arm} | round {rnd}: {rows[-1]['epoch_time_s']:.3f} s/epoch, "
                          f"peak {rows[-1]['peak_rss_mib']} MiB, load {r['load']}", flush=True)
            per_epoch = {arm: [statistics.fmean(r["epoch_times"]) for r in rs] for arm, rs in runs.items()}
            peaks = {arm: [r["peak"] for r in rs if r["peak"] is not None] for arm, rs in runs.items()}
            loop_arm, plain_arm = list(ARMS)
            med = {arm: statistics.median(v) for arm, v in per_epoch.items()}
            paired = [p / lo for lo, p in zip(per_epoch[loop_arm], per_epoch[plain_arm])]  # same round: adjacent
            mn = {arm: min(v) for arm, v in per_epoch.items()}
            summary.append({
                "case": case, "epochs": cfg.epochs, "repeats": args.repeats,
                "loop_median_s": med[loop_arm], "plain_median_s": med[plain_arm],
                "ratio_median": med[plain_arm] / med[loop_arm], "ratio_paired_median": statistics.median(paired),
                "ratios_paired": paired,
                "loop_min_s": mn[loop_arm], "plain_min_s": mn[plain_arm], "ratio_min": mn[plain_arm] / mn[loop_arm],
                "loop_peak_mib": statistics.median(peaks[loop_arm]) / 2**20 if peaks[loop_arm] else None,
                "plain_peak_mib": statistics.median(peaks[plain_arm]) / 2**20 if peaks[plain_arm] else None,
                "identical_weights": all(same_weights(a["state"], b["state"])
                                         for a, b in zip(runs[loop_arm], runs[plain_arm])),
                "same_test_acc": all(a["final_test_acc"] == b["final_test_acc"]
                                     for a, b in zip(runs[loop_arm], runs[plain_arm])),
                "final_test_acc": runs[loop_arm][0]["final_test_acc"],
                "loads": sorted(r["load"] for rs in runs.values() for r in rs),
            })
    total = time.perf_counter() - t0
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.node(),
           "python": platform.python_version(), "load_start": load_start,
           "load_end": [round(v, 2) for v in os.getloadavg()], "total_s": round(total, 1),
           "command": ("python benchmarks/bench_api_overhead.py "
                       + " ".join(argv if argv is not None else sys.argv[1:])).strip()}
    md = markdown(summary, env)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{args.tag}.md", md)
    write_text_atomic(out / f"{args.tag}.csv", csv_text(rows, FIELDS))
    write_text_atomic(out / f"{args.tag}.json", json.dumps(strict_json_value(
        {"args": vars(args), "env": env, "summary": summary, "runs": rows}), indent=1, allow_nan=False) + "\n")
    print(md)
    return 0


def _mib(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def markdown(summary: list[dict], env: dict) -> str:
    lines = [
        "# A plain loop on the public API vs `coreaug train` (per-epoch time and peak memory)", "",
        "Same views (`prepare_data`), model (`build_model`), SGD + MultiStepLR, batch size, epochs and seeds; "
        "per-epoch time = training + selection (evaluation excluded). Ratio = plain loop / `coreaug train` "
        "(target ≤ 1.05): of the medians, of the minima, and the median of the per-round ratios (the two runs of "
        "a round are adjacent in time, so that ratio is the least exposed to load drift). Runs interleaved, after "
        "an untimed 1-epoch warm-up of each arm per case. Peak = RSS high-water mark "
        "above the level before the run (data loading included, same for both arms). `identical weights`: the "
        "final weights of every plain run equal those of the `coreaug train` run of the same round, bit for bit.", "",
        "| case | epochs | repeats | `coreaug train` s/epoch (median / min) | plain loop s/epoch (median / min) "
        "| ratio of medians | ratio of minima | median per-round ratio | peak MiB train / plain (median) "
        "| identical weights | test acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['case']} | {s['epochs']} | {s['repeats']} | {s['loop_median_s']:.3f} / {s['loop_min_s']:.3f} | "
            f"{s['plain_median_s']:.3f} / {s['plain_min_s']:.3f} | {s['ratio_median']:.3f} | {s['ratio_min']:.3f} | "
            f"{s['ratio_paired_median']:.3f} | "
            f"{_mib(s['loop_peak_mib'])} / {_mib(s['plain_peak_mib'])} | "
            f"{'yes' if s['identical_weights'] else 'no'} | {100 * s['final_test_acc']:.1f}% |")
    lines += ["", f"Environment: torch {env['torch']}, {env['threads']} torch thread(s), {env['machine']}; load "
                  f"average (1/5/15 min) {env['load_start']} at the start, {env['load_end']} at the end; per-run 1-min "
                  f"loads in the CSV (a shared 2-core machine). Total {env['total_s']:.0f} s. Test accuracy is "
                  "after the last epoch (the same in both arms); after 2 epochs of 10% subsets on the synthetic "
                  "CIFAR-shaped data the ResNet-20 is still near chance, which says nothing about the method.",
              "", "Command: `" + env["command"] + "`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
