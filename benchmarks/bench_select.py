"""Facility-location speed and quality: ours (lazy, stochastic, naive) vs submodlib and apricot.

Every optimiser maximises the same per-class objective F(S) = Σ_i max_{j∈S} s_ij with the official
code's similarity s_ij = exp(−‖g_i − g_j‖₂ / d). The references receive the *same* dense
similarity matrix (submodlib ``mode="dense", sijs=S``; apricot ``metric="precomputed"``), built by
our kernel, and their time is ``kernel build + their optimiser``; ours is end-to-end
(:func:`coreaug.select.facility_location`, which builds its own kernel). Objectives are
recomputed from the returned indices in float64 by
:func:`coreaug.select.facility_location_objective`, independent of any optimiser.

Data: synthetic 10-dim bias proxies ``softmax(z) − onehot(y)`` with ``z ~ 2·N(0, I) + 3·e_y``, 10
balanced classes, budget 10% per class (proportional); plus the DESIGN.md case: one class of
10,000 points, 1,000 picks. apricot re-compiles its numba kernels in every ``fit``; the bench
memoises them and warms them up before timing (apricot's best case, see _memoise_apricot_jit).

Ratios are ours(lazy) / this method: time < 1 means ours is faster, objective ≥ 0.999 is the target.
Wall-clock and process CPU time (all threads) are both reported: on a shared machine CPU time is
the steadier of the two. Peak memory (``peak_mem_mib``) comes from one extra, untimed run per method
after its timed runs (``_memory.PeakMemory``: peak RSS above the level before the call, after gc +
malloc_trim, sampled every 2 ms by a thread; the sampler never runs during a timed run). It covers
everything the method needs: for the references that includes our dense per-class kernel they are
handed (the kernel build is part of their time too).

    python benchmarks/bench_select.py            # 10k, 20k, 50k + single-class 10k
    python benchmarks/bench_select.py --quick    # small sizes, seconds
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import math
import os
import platform
import sys
import time
from typing import Callable

import torch

from coreaug.io import write_text_atomic
from coreaug.select import facility_location, facility_location_objective
from coreaug.select.budgets import class_budgets
from coreaug.select.similarity import SimilarityKernel

from _memory import PeakMemory

NAIVE_MAX_OPS = 2e10  # Σ_c k_c · n_c² above this, our naive greedy is skipped (minutes on 2 cores)


def make_proxies(n: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    z = 2.0 * torch.randn(n, 10, generator=gen)
    z[torch.arange(n), y % 10] += 3.0
    g = torch.softmax(z, dim=1)
    g[torch.arange(n), y % 10] -= 1.0
    return g, y


def _try_import(name: str):
    try:
        return __import__(name), None
    except Exception as exc:  # ImportError, or a broken binary wheel
        return None, f"{type(exc).__name__}: {exc}"


def run_reference(name: str, x: torch.Tensor, y: torch.Tensor, budgets: list[int], mod) -> tuple[float, float, list[int]]:
    """Per class: build our dense kernel, hand it to the reference; return (kernel s, optimiser s, picks)."""
    t_kernel = t_opt = 0.0
    picks: list[int] = []
    for c, k in enumerate(budgets):
        mem = (y == c).nonzero().flatten()
        t0 = time.perf_counter()
        S = SimilarityKernel(x[mem], "exp", force_dense=True).S.numpy()
        t1 = time.perf_counter()
        if name == "submodlib":
            f = mod.FacilityLocationFunction(n=int(mem.numel()), mode="dense", sijs=S, separate_rep=False)
            res = f.maximize(budget=k, optimizer="LazyGreedy", stopIfZeroGain=False, stopIfNegativeGain=False,
                             verbose=False, show_progress=False)
            local = [int(i) for i, _ in res]
        else:
            sel = mod.FacilityLocationSelection(k, metric="precomputed", optimizer="lazy", verbose=False)
            sel.fit(S)
            local = [int(i) for i in sel.ranking]
        t2 = time.perf_counter()
        t_kernel += t1 - t0
        t_opt += t2 - t1
        picks += mem[torch.as_tensor(local, dtype=torch.long)].tolist()
        del S
    return t_kernel, t_opt, picks


def _memoise_apricot_jit() -> None:
    """apricot 0.6 builds (JIT-compiles) its numba gain kernels inside every ``fit`` — seconds per
    call, i.e. per class. Memoise those factories so each kernel compiles once, during the warm-up:
    apricot's best case, so the comparison measures its optimiser, not its compiler."""
    import apricot.functions.facilityLocation as fl_mod

    for name in ("calculate_gains", "calculate_gains_sparse", "calculate_gains_sieve"):
        if hasattr(fl_mod, name):
            setattr(fl_mod, name, functools.lru_cache(maxsize=None)(getattr(fl_mod, name)))


def timed(fn: Callable[[], object], repeats: int = 1) -> tuple[float, float, object]:
    """Best-of-``repeats`` wall-clock and process CPU time (all threads) of ``fn()``."""
    best_wall = best_cpu = math.inf
    out = None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, out


def peak_mem_mib(fn: Callable[[], object]) -> float:
    """Peak RSS (MiB) above the starting level during one extra, untimed ``fn()``."""
    with PeakMemory(torch.device("cpu")) as pm:
        out = fn()
    del out
    return pm.peak / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,20000,50000", help="comma-separated n (10 classes each)")
    ap.add_argument("--single", type=int, default=10000, help="single-class case size (0 to skip)")
    ap.add_argument("--single-picks", type=int, default=1000)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="sizes 2000,5000 and a 3000/300 single class")
    ap.add_argument("--no-naive", action="store_true", help="skip our naive greedy everywhere")
    ap.add_argument("--repeats", type=int, default=1, help="best of N runs (naive always runs once)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads for everything (default 1: all competitors single-threaded; "
                         "submodlib is, and apricot's lazy kernel is compiled with parallel=False)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "select.csv"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    if args.quick:
        args.sizes, args.single, args.single_picks = "2000,5000", 3000, 300

    refs = {}
    for name, module in (("submodlib", "submodlib"), ("apricot", "apricot")):
        mod, err = _try_import(module)
        if mod is None:
            print(f"[skip] {name} is not installed or failed to import ({err}); pip install '.[bench]'")
        else:
            refs[name] = mod
    if "apricot" in refs:
        _memoise_apricot_jit()
    if "apricot" in refs:  # numba JIT warm-up, excluded from timings
        xw, _ = make_proxies(300, 1, seed=99)
        refs["apricot"].FacilityLocationSelection(5, metric="precomputed", optimizer="lazy", verbose=False).fit(
            SimilarityKernel(xw, "exp", force_dense=True).S.numpy())
    facility_location(*make_proxies(300, 1, seed=98), 5)  # torch warm-up

    cases = [(int(s), args.classes, None) for s in args.sizes.split(",") if s.strip()]
    if args.single > 0:
        cases.append((args.single, 1, args.single_picks))

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores visible (shared: timings are noisy)")
    rows: list[dict[str, object]] = []
    for n, classes, picks in cases:
        x, y = make_proxies(n, classes, seed=n)
        sizes = torch.bincount(y, minlength=classes).tolist()
        budget = picks if picks is not None else max(1, math.floor(args.fraction * n + 1e-9))
        budgets = class_budgets(sizes, budget, "proportional")
        case = f"{n}x10d/{classes}cls/{sum(budgets)}picks"
        print(f"\n== {case}")
        # method -> (wall s, cpu s, objective, peak MiB, note)
        results: dict[str, tuple[float | None, float | None, float | None, float | None, str]] = {}
        for greedy in ("lazy", "stochastic", "naive"):
            ops = sum(k * s * s for k, s in zip(budgets, sizes))
            if greedy == "naive" and (args.no_naive or ops > NAIVE_MAX_OPS):
                note = f"skipped: Σ k·n² = {ops:.1e} > {NAIVE_MAX_OPS:.0e} element-ops"
                print(f"  ours-{greedy:<10} {note}")
                results[f"ours-{greedy}"] = (None, None, None, None, note)
                continue
            reps = 1 if greedy == "naive" else args.repeats
            run_ours = functools.partial(facility_location, x, y, budget, greedy=greedy, seed=0,
                                         threads=args.threads)
            t, cpu, sel = timed(run_ours, reps)
            obj = facility_location_objective(x, sel.indices, y)
            del sel
            mem = peak_mem_mib(run_ours)
            results[f"ours-{greedy}"] = (t, cpu, obj, mem, "end-to-end")
            print(f"  ours-{greedy:<10} {t:8.2f} s  (cpu {cpu:7.2f} s)   F = {obj:.4f}   peak {mem:7.1f} MiB")
        for name, mod in refs.items():
            run_ref = functools.partial(run_reference, name, x, y, budgets, mod)
            try:
                t, cpu, (tk, to, idx) = timed(run_ref, args.repeats)
                mem = peak_mem_mib(run_ref)
            except Exception as exc:  # a reference failing must not kill the benchmark
                note = f"failed: {type(exc).__name__}: {exc}"
                print(f"  {name:<15} {note}")
                results[name] = (None, None, None, None, note)
                continue
            obj = facility_location_objective(x, torch.as_tensor(idx), y)
            results[name] = (t, cpu, obj, mem, f"kernel {tk:.2f}s + optimiser {to:.2f}s (last timed run)")
            print(f"  {name:<15} {t:8.2f} s  (cpu {cpu:7.2f} s)   F = {obj:.4f}   peak {mem:7.1f} MiB   "
                  f"(kernel {tk:.2f} s + optimiser {to:.2f} s)")
        t_ours, c_ours, f_ours, _, _ = results["ours-lazy"]
        for method, (t, cpu, f, mem, note) in results.items():
            rows.append({
                "case": case, "n": n, "classes": classes, "picks": sum(budgets), "method": method,
                "time_s": "" if t is None else f"{t:.3f}",
                "cpu_s": "" if cpu is None else f"{cpu:.3f}",
                "objective": "" if f is None else f"{f:.6f}",
                "time_ratio_ours_lazy_over_this": "" if t is None else f"{t_ours / t:.3f}",
                "cpu_ratio_ours_lazy_over_this": "" if cpu is None else f"{c_ours / cpu:.3f}",
                "objective_ratio_ours_lazy_over_this": "" if f is None else f"{f_ours / f:.6f}",
                "peak_mem_mib": "" if mem is None else f"{mem:.1f}",
                "note": note,
            })

    header = ["case", "method", "time_s", "cpu_s", "objective", "time_ratio_ours_lazy_over_this",
              "cpu_ratio_ours_lazy_over_this", "objective_ratio_ours_lazy_over_this", "peak_mem_mib"]
    widths = [27, 16, 9, 9, 13, 11, 11, 11, 10]
    print("\n" + " ".join(h[:w].ljust(w) for h, w in zip(
        ["case", "method", "wall [s]", "cpu [s]", "objective F", "wall o/t", "cpu o/t", "F o/t", "peak MiB"], widths)))
    for r in rows:
        vals = [str(r[h]) if r[h] != "" else "-" for h in header]
        print(" ".join(v.ljust(w) for v, w in zip(vals, widths)) + ("  " + str(r["note"]) if r["time_s"] == "" else ""))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(args.out, buf.getvalue())
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
