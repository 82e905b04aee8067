"""Proxy pass vs a bare ``torch.no_grad()`` forward over the same images (issue 9, item 2).

Model: ResNet-20 (CIFAR), 10 classes, random init, eval mode. Data: ``--n`` synthetic CIFAR-shaped
images (3×32×32 float32, already normalised) held in memory as the training loop holds its
test-time view (:class:`coreaug.data.base.TensorDataset`, the materialised ``eval_train`` view).

Rows (every one over the same images, timed after a warm-up, min over ``--repeats`` interleaved
rounds):

* ``bare_forward@B`` — ``model(x[s:s+B])`` under ``torch.no_grad()`` for B in ``--batches``; the
  fastest B is the reference (``ratio_vs_best_bare`` = time / its time).
* ``legacy_pass@512`` — the proxy pass as it was before this change (commit de126c1): a
  ``DataLoader`` at the old default batch 512, per-batch label/finiteness checks that read device
  values, per-batch ``.cpu()`` copies, ``torch.cat`` at the end. Re-implemented here verbatim so the
  "before" number is measured in the same run.
* ``proxy_pass@512`` — today's :func:`coreaug.proxies.compute_proxies` at the old default batch.
* ``proxy_pass@auto`` — today's default (``batch_size=None``: 64 on CPU, 1024 on CUDA; on CUDA
  also bf16/fp16 autocast and channels-last inputs).

Peak memory of the default pass: one extra, untimed run (``_memory.PeakMemory``).
Results: printed table + ``benchmarks/results/proxy_pass.csv`` and ``.md`` (atomic writes).

    python benchmarks/bench_proxy.py                  # n = 2048, 1 thread, CPU (about 1 minute)
    python benchmarks/bench_proxy.py --device cuda --n 50000 --batches 256,512,1024,2048
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from coreaug.data.base import TensorDataset
from coreaug.device import resolve_device, resolve_eval_batch_size
from coreaug.io import csv_text, write_text_atomic
from coreaug.models import build_model, last_linear
from coreaug.proxies import compute_proxies, proxies_from_outputs

from _memory import PeakMemory


def legacy_pass(model, dataset, batch_size: int, device: torch.device):
    """The proxy pass before issue 9 (commit de126c1), bias proxies: per-batch syncs and copies."""
    fc = last_linear(model)
    captured = {}
    handle = fc.register_forward_hook(lambda _m, i, o: captured.update(h=i[0], z=o))
    feats, labels, losses, indices = [], [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, pin_memory=device.type == "cuda")
    try:
        model.eval()
        with torch.no_grad():
            for x, y, idx in loader:
                x = x.to(device, non_blocking=True)
                y = torch.as_tensor(y).to(device, torch.long, non_blocking=True)
                captured.clear()
                out = model(x)
                z = captured.get("z", out)
                if y.numel() and (int(y.min()) < 0 or int(y.max()) >= z.shape[1]):
                    raise ValueError("labels")
                if not bool(torch.isfinite(z).all()):
                    raise ValueError("non-finite")
                g, loss = proxies_from_outputs(z, y, captured.get("h"), kind="bias")
                feats.append(g.cpu())
                labels.append(y.cpu())
                losses.append(loss.cpu())
                indices.append(torch.as_tensor(idx, dtype=torch.long).cpu())
    finally:
        handle.remove()
    return torch.cat(feats).float(), torch.cat(labels), torch.cat(losses), torch.cat(indices)


def bare_forward(model, x: torch.Tensor, batch_size: int, device: torch.device) -> None:
    model.eval()
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            model(x[s: s + batch_size].to(device, non_blocking=True))


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall-clock, process CPU time) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, time.process_time() - c0


FIELDS = ["method", "batch", "n", "device", "threads", "time_s", "img_per_s", "ratio_vs_best_bare", "cpu_s",
          "cpu_ratio_vs_best_bare", "peak_mem_mib", "loadavg_1m"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2048, help="images (default 2048)")
    ap.add_argument("--batches", default="64,128,256,512", help="bare-forward batch sizes to try")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; min is reported")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "proxy_pass.csv"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model("resnet20", 10, in_channels=3, image_size=32).to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.n,), generator=g)
    ds = TensorDataset(x, y)
    auto_bs = resolve_eval_batch_size("auto", device)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    cases: dict[str, tuple[int, callable]] = {}
    for b in batches:
        cases[f"bare_forward@{b}"] = (b, lambda b=b: bare_forward(model, x, b, device))
    cases["legacy_pass@512"] = (512, lambda: legacy_pass(model, ds, 512, device))
    cases["proxy_pass@512"] = (512, lambda: compute_proxies(model, ds, batch_size=512, device=device))
    cases["proxy_pass@auto"] = (auto_bs, lambda: compute_proxies(model, ds, device=device))
    # correctness in the same run: today's pass equals the legacy pass on CPU
    if device.type == "cpu":
        new = compute_proxies(model, ds, batch_size=512, device=device)
        old = legacy_pass(model, ds, 512, device)
        assert torch.equal(new.features, old[0]) and torch.equal(new.losses, old[2]), "proxy pass changed"
    small = TensorDataset(x[:512], y[:512])
    bare_forward(model, x[:512], 512, device)  # warm-up (allocator, kernels) on a slice
    compute_proxies(model, small, device=device)
    legacy_pass(model, small, 512, device)
    best = {k: float("inf") for k in cases}
    best_cpu = dict(best)
    for _ in range(args.repeats):
        for k, (_, fn) in cases.items():
            wall, cpu = timed(fn, device)
            best[k], best_cpu[k] = min(best[k], wall), min(best_cpu[k], cpu)
    with PeakMemory(device) as pm:
        compute_proxies(model, ds, device=device)
    ref_key = min((k for k in cases if k.startswith("bare")), key=best.get)
    cpu_ref = min((k for k in cases if k.startswith("bare")), key=best_cpu.get)
    load = os.getloadavg()[0]
    rows = []
    for k, (b, _) in cases.items():
        rows.append({"method": k.split("@")[0], "batch": b, "n": args.n, "device": str(device),
                     "threads": args.threads, "time_s": round(best[k], 4), "img_per_s": round(args.n / best[k], 1),
                     "ratio_vs_best_bare": round(best[k] / best[ref_key], 3), "cpu_s": round(best_cpu[k], 4),
                     "cpu_ratio_vs_best_bare": round(best_cpu[k] / best_cpu[cpu_ref], 3),
                     "peak_mem_mib": round(pm.peak / 2**20, 1) if k == "proxy_pass@auto" else "",
                     "loadavg_1m": round(load, 2)})
    write_text_atomic(args.out, csv_text(rows, FIELDS))
    md = [f"# Proxy pass vs bare no-grad forward (ResNet-20, {args.n} images 3x32x32, {device}, "
          f"{args.threads} thread(s), load {load:.2f}, {platform.node()})", "",
          f"Reference: the fastest bare forward ({ref_key} by wall-clock, {cpu_ref} by process CPU time). "
          f"Ratios are time / reference time, min of {args.repeats} interleaved rounds; on a shared machine "
          "the CPU-time ratio is the steadier one.", "",
          "| method | batch | wall (s) | img/s | wall ratio vs best bare | CPU (s) | CPU ratio vs best bare |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {r['method']} | {r['batch']} | {r['time_s']} | {r['img_per_s']} | {r['ratio_vs_best_bare']} | "
           f"{r['cpu_s']} | {r['cpu_ratio_vs_best_bare']} |" for r in rows]
    md += ["", f"Peak memory of the default pass (untimed run): {rows[-1]['peak_mem_mib']} MiB."]
    write_text_atomic(os.path.splitext(args.out)[0] + ".md", "\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nproxy pass at its defaults = {best['proxy_pass@auto'] / best[ref_key]:.2f}x the best bare forward by "
          f"wall-clock, {best_cpu['proxy_pass@auto'] / best_cpu[cpu_ref]:.2f}x by CPU time (target <= 1.2x); before "
          f"(legacy @512): {best['legacy_pass@512'] / best[ref_key]:.2f}x / "
          f"{best_cpu['legacy_pass@512'] / best_cpu[cpu_ref]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
