"""Selection time of every registered selector on CIFAR-10-shaped synthetic proxies, vs the coreset.

Data (seeded): n = 50,000 points, 10 balanced classes; logits ``z = 2·N(0, I) + 3·e_y``, probabilities
``p = softmax(z)``, bias gradient proxies ``p − e_y`` (10-dim), penultimate embeddings ``h = μ_y + N(0, I)``
(64-dim, ``μ_y ~ 2·N(0, I)``), per-example losses ``−log p_y``, last-layer GraNd norms
``‖p − e_y‖·√(‖h‖²+1)``, and a forgetting history of 10 simulated epochs. Budget 10% (proportional
per class), one CPU thread (``torch.set_num_threads(1)``), default options of every selector.

Time is the wall clock of one :func:`coreaug.select.select` call (inputs already computed: the
proxy pass is not included). Peak memory is the RSS high-water mark above the level before the call
(``_memory.RssHighWater``; no sampler thread, so it wraps the timed call). ``ratio`` = time /
time(coreset) measured in the same run. Wall-clock numbers on a shared machine are noisy: the load
average is recorded.

    python benchmarks/bench_selectors.py            # 50k points (minutes)
    python benchmarks/bench_selectors.py --quick    # 5k points (seconds)
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import time

import torch

from coreaug.io import write_text_atomic
from coreaug.select import SELECTION_METHODS, ForgettingTracker, get_selector, select
from coreaug.select.scores import grand_scores

from _memory import RssHighWater

HERE = os.path.dirname(os.path.abspath(__file__))


def make_inputs(n: int, classes: int = 10, emb_dim: int = 64, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    z = 2.0 * torch.randn(n, classes, generator=gen)
    z[torch.arange(n), y] += 3.0
    p = torch.softmax(z, dim=1)
    g = p.clone()
    g[torch.arange(n), y] -= 1.0
    mu = 2.0 * torch.randn(classes, emb_dim, generator=gen)
    h = mu[y] + torch.randn(n, emb_dim, generator=gen)
    tracker = ForgettingTracker(n)
    for _ in range(10):  # correctness improves over the simulated epochs
        tracker.update(torch.arange(n), torch.rand(n, generator=gen) < 0.5 + 0.4 * p[torch.arange(n), y])
    return {"labels": y, "features": g, "probs": p, "embeddings": h, "losses": -p[torch.arange(n), y].log(),
            "grad_norms": grand_scores(p, y, h).float(), "history": tracker}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5,000 points instead of 50,000")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--methods", nargs="*", default=list(SELECTION_METHODS))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "selectors_time"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.n or (5_000 if args.quick else 50_000)
    data = make_inputs(n)
    inputs = {k: v for k, v in data.items() if k != "labels"}
    methods = ["coreset"] + [m for m in args.methods if m != "coreset"]
    load_before = os.getloadavg()
    rows = []
    for m in methods:
        with RssHighWater() as mem:
            t0 = time.perf_counter()
            sel = select(m, labels=data["labels"], fraction=args.fraction, seed=0, **inputs)
            dt = time.perf_counter() - t0
        spec = get_selector(m)
        rows.append({"selector": m, "needs": "+".join(spec.inputs) or "-", "weighted": spec.weighted,
                     "size": len(sel), "time_s": dt,
                     "peak_mem_mib": None if mem.peak is None else mem.peak / 2**20})
        print(f"{m:<17} {dt:8.3f} s  size {len(sel):6d}  peak {rows[-1]['peak_mem_mib'] or float('nan'):8.1f} MiB",
              flush=True)
    ref = rows[0]["time_s"]
    for r in rows:
        r["ratio_vs_coreset"] = r["time_s"] / ref
    load_after = os.getloadavg()
    header = (f"n={n}, 10 classes, bias proxies 10-dim, embeddings 64-dim, fraction {args.fraction}, "
              f"torch threads {torch.get_num_threads()}, torch {torch.__version__}, {platform.machine()}, "
              f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min)")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(args.out + ".csv", f"# {header}\n" + buf.getvalue())
    md = ["# Selection time per selector (CPU, 1 thread)", "", header + ".", "",
          "Time of one `coreaug.select.select` call on precomputed inputs (the proxy pass is not included); "
          "peak memory = RSS high-water mark above the level before the call; ratio = time / coreset time "
          "in the same run.", "",
          "| selector | needs | weighted | size | time (s) | ratio vs coreset | peak memory (MiB) |",
          "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        pm = "n/a" if r["peak_mem_mib"] is None else f"{r['peak_mem_mib']:.1f}"
        md.append(f"| {r['selector']} | {r['needs']} | {'yes' if r['weighted'] else 'no'} | {r['size']} | "
                  f"{r['time_s']:.3f} | {r['ratio_vs_coreset']:.3f} | {pm} |")
    md.append("")
    md.append("Regenerate: `python benchmarks/bench_selectors.py` (`--quick` for 5k points).")
    write_text_atomic(args.out + ".md", "\n".join(md) + "\n")
    print(f"wrote {args.out}.md/.csv")


if __name__ == "__main__":
    main()
