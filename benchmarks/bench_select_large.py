"""Facility location on large ground sets: time and peak memory on this CPU.

Cases (synthetic proxies; nothing is downloaded):

* ``pool-200k``: 200,000 10-dim bias proxies in ONE ground set (``per_class="none"``), too large for
  a dense matrix (160 GB), so the exact streamed greedy runs (``O(n)`` memory); then the
  approximate sparse kNN variant on the same data, with its objective ratio vs the exact greedy
  (both objectives under the exact similarity).
* ``imagenet-64d``: ImageNet-shaped — 1,281,167 points in 1,000 classes (732–1,300 per class, like
  ILSVRC-2012's train split), 10% per class, proxies of dimension 1,000 sketched to 64 by a random
  Gaussian projection (distances preserved up to JL distortion); the full case, nothing extrapolated.
* ``imagenet-1000d``: the same with unsketched 1,000-dim proxies, all 1,000 classes by default
  (the 1.28M × 1,000 float32 proxies alone take 5.1 GB); ``--wide-classes N`` < 1,000 runs the
  first N classes only and adds a row extrapolated linearly in the number of classes, labelled as such.

Rows of cases not named in ``--cases`` are kept from the existing results file.

Peak memory: peak RSS above the level before the call (kernel high-water mark, ``_memory.RssHighWater``),
input proxies excluded. One run per method (minutes each). ``torch.set_num_threads(--threads)``.

    python benchmarks/bench_select_large.py                   # all cases (~30-60 min on a loaded 2-core box)
    python benchmarks/bench_select_large.py --cases pool --pool-n 50000   # smaller
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time

import torch

from coreaug.io import csv_text, write_text_atomic
from coreaug.select import facility_location

from _memory import RssHighWater
from bench_select import make_proxies

GiB = 2**30


def imagenet_sizes(classes: int, seed: int = 0) -> list[int]:
    """Class sizes between 732 and 1,300 summing to 1,281,167 for 1,000 classes (ILSVRC-2012-like:
    most classes have 1,300 images); scaled to ``classes``."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.full((1000,), 1300, dtype=torch.long)
    short = 1300 * 1000 - 1281167  # images missing from full classes
    k = 104  # classes below 1,300 (ILSVRC-2012 has about 10%)
    cut = torch.rand(k, generator=gen)
    cut = (cut / cut.sum() * short).round().long().clamp(max=1300 - 732)
    cut[0] += short - int(cut.sum())
    sizes[torch.randperm(1000, generator=gen)[:k]] -= cut
    return sizes[:classes].tolist()


def imagenet_proxies(classes: int, dim: int, sketch: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bias proxies softmax(z) − onehot(y) with ``dim`` outputs (z ~ 2·N(0,I) + 3·e_y), generated
    class by class; optionally sketched to ``sketch`` dims with a Gaussian projection / sqrt(sketch)."""
    sizes = imagenet_sizes(classes)
    gen = torch.Generator().manual_seed(seed)
    proj = None if sketch is None else torch.randn(dim, sketch, generator=gen) / sketch**0.5
    out = torch.empty((sum(sizes), sketch or dim), dtype=torch.float32)
    labels = torch.empty(sum(sizes), dtype=torch.long)
    a = 0
    for c, n in enumerate(sizes):
        z = 2.0 * torch.randn(n, dim, generator=gen)
        z[:, c % dim] += 3.0
        g = torch.softmax(z, dim=1)
        g[:, c % dim] -= 1.0
        out[a : a + n] = g if proj is None else g @ proj
        labels[a : a + n] = c
        a += n
    return out, labels


def _case_kind(case: str) -> str:
    """Which ``--cases`` entry produced a row (from its case label)."""
    if case.startswith("pool-"):
        return "pool"
    return "wide" if "1000d" in case else "imagenet"  # wide: unsketched 1,000-dim; imagenet: "64d sketch"


def _kept_rows(path: str, cases: set[str]) -> list[dict[str, str]]:
    """Rows of an earlier results file for the cases not re-run now (so ``--cases wide`` updates
    one case without discarding an hour-long ``pool`` measurement)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if _case_kind(r["case"]) not in cases]


def run(label: str, fn) -> dict[str, object]:
    load0 = os.getloadavg()[0]
    with RssHighWater() as hw:
        t0, c0 = time.perf_counter(), time.process_time()
        sel = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = None if hw.peak is None else hw.peak / 2**20
    obj = float(sel.info["objective"])
    print(f"  {label:<34} {wall:9.1f} s  (cpu {cpu:8.1f} s)  peak {peak if peak is None else round(peak, 1)} MiB"
          f"  F = {obj:.4f}  load {load0:.2f}->{os.getloadavg()[0]:.2f}", flush=True)
    return {"time_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_mib": "" if peak is None else round(peak, 1),
            "objective": round(obj, 4), "load1_start": round(load0, 2), "load1_end": round(os.getloadavg()[0], 2),
            "picks": len(sel)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="pool,imagenet,wide", help="comma-separated: pool, imagenet, wide")
    ap.add_argument("--pool-n", type=int, default=200_000)
    ap.add_argument("--pool-picks", type=int, default=200)
    ap.add_argument("--knn", type=int, default=32)
    ap.add_argument("--fraction", type=float, default=0.1, help="per-class fraction of the ImageNet-shaped cases")
    ap.add_argument("--sketch", type=int, default=64)
    ap.add_argument("--imagenet-classes", type=int, default=1000, help="< 1000 only for smoke tests")
    ap.add_argument("--wide-classes", type=int, default=1000,
                    help="classes of the unsketched 1000-dim case (1000 = full; fewer are extrapolated and labelled so)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "select_large.csv"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    threads = torch.get_num_threads()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {threads} thread(s), "
          f"{os.cpu_count()} cores visible, load {os.getloadavg()[0]:.2f}", flush=True)
    facility_location(*make_proxies(300, 1, seed=98), 5)  # warm-up
    rows: list[dict[str, object]] = []

    def add(case: str, method: str, res: dict[str, object], note: str) -> None:
        rows.append({"case": case, "method": method, **res, "threads": threads, "note": note})

    if "pool" in cases:
        n, k = args.pool_n, args.pool_picks
        x, y = make_proxies(n, 10, seed=n)
        case = f"pool-{n // 1000}k x10d, 1 ground set, {k} picks"
        print(f"\n== {case}", flush=True)
        exact = run("exact (streamed, auto)", lambda: facility_location(x, y, k, per_class="none"))
        add(case, "exact streamed", exact, "exact greedy, nothing n×n held")
        approx = run(f"kNN K={args.knn} (approximate)", lambda: facility_location(x, y, k, per_class="none", knn=args.knn))
        ratio = approx["objective"] / exact["objective"]
        print(f"  kNN objective / exact objective = {ratio:.6f}", flush=True)
        add(case, f"knn K={args.knn}", approx, f"approximate; objective ratio vs exact {ratio:.6f}")
        del x, y
    if "imagenet" in cases:
        x, y = imagenet_proxies(args.imagenet_classes, 1000, args.sketch)
        case = f"imagenet-shaped {x.shape[0]} pts, {args.imagenet_classes} cls, {args.sketch}d sketch"
        print(f"\n== {case}", flush=True)
        res = run("exact (engine, auto)", lambda: facility_location(x, y, args.fraction))
        add(case, "exact engine", res, "full case, measured")
        del x, y
    if "wide" in cases:
        x, y = imagenet_proxies(args.wide_classes, 1000, None)
        full = args.wide_classes >= 1000
        case = (f"imagenet-shaped {x.shape[0]} pts, 1000 cls, 1000d (unsketched)" if full
                else f"imagenet-shaped 1000d, first {args.wide_classes} cls ({x.shape[0]} pts)")
        print(f"\n== {case}", flush=True)
        res = run("exact (engine, auto)", lambda: facility_location(x, y, args.fraction))
        add(case, "exact engine", res, "full case, measured; plus the 5.1 GB input proxies" if full
            else "measured on this subset")
        if not full:
            scale = 1000 / args.wide_classes
            ext = {**res, "time_s": round(res["time_s"] * scale, 1), "cpu_s": round(res["cpu_s"] * scale, 1),
                   "objective": "", "picks": ""}
            add(f"imagenet-shaped 1000d, 1000 cls (EXTRAPOLATED x{scale:g})", "exact engine", ext,
                "NOT measured: time x classes ratio; peak memory is per batch so it does not grow, "
                "plus the 5.1 GB proxies themselves")
        del x, y

    fields = ["case", "method", "time_s", "cpu_s", "peak_mib", "objective", "picks", "threads", "load1_start",
              "load1_end", "note"]
    order = {"pool": 0, "imagenet": 1, "wide": 2}
    rows = sorted(_kept_rows(args.out, cases) + rows, key=lambda r: order[_case_kind(str(r["case"]))])
    write_text_atomic(args.out, csv_text(rows, fields))
    md = [f"Large facility-location cases on this CPU ({threads} thread(s); `python benchmarks/bench_select_large.py`). "
          "Peak = peak RSS above the level before the call (input proxies excluded).", "",
          "| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    md += ["| " + " | ".join(str(r.get(f, "")) for f in fields) + " |" for r in rows]
    md_path = os.path.splitext(args.out)[0] + ".md"
    write_text_atomic(md_path, "\n".join(md) + "\n")
    print(f"\nwrote {args.out} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
