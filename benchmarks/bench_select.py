"""Facility-location speed and quality, before/after: the previous default (per-class lazy greedy,
kept as ``greedy="lazy"``) vs the exact engine (``greedy="auto"``, the default), its tensor loop, the
bare similarity build, stochastic/naive greedy, submodlib and apricot.

Every optimiser maximises the same per-class objective F(S) = Σ_i max_{j∈S} s_ij with the official
code's similarity s_ij = exp(−‖g_i − g_j‖₂ / d). The references receive the *same* dense
similarity matrix (submodlib ``mode="dense", sijs=S``; apricot ``metric="precomputed"``), built by
our kernel, and their time is ``kernel build + their optimiser``; ours is end-to-end
(:func:`coreaug.select.facility_location`, which builds its own kernel). Objectives are
recomputed from the returned indices in float64 by
:func:`coreaug.select.facility_location_objective`, independent of any optimiser.

Data: synthetic 10-dim bias proxies ``softmax(z) − onehot(y)`` with ``z ~ 2·N(0, I) + 3·e_y``, 10
balanced classes, budget 10% per class (proportional); the same with 100-dim proxies (50k points:
wider proxies make the build dearer, the greedy does not change); plus the DESIGN.md case: one
class of 10,000 points, 1,000 picks. apricot re-compiles its numba kernels in every ``fit``; the bench
memoises them and warms them up before timing (apricot's best case, see _memoise_apricot_jit).

Reference rows: ``build-only`` is the time merely to build the dense per-class similarity matrices
(``SimilarityKernel(..., force_dense=True)`` per class, the same matrices the references receive);
target: ``after`` ≤ 1.2x of it. ``before`` is the previous default. Ratios in the table:
``x_build`` = time / build-only, ``x_after`` = time / after (> 1: slower than after),
``F/F_before`` = objective / the previous default's (target ≥ 0.999). For apricot and submodlib
``opt_x_after`` compares optimisers alone: their optimiser time / (after − build-only).
Wall-clock and process CPU time (all threads) are both reported: on a shared machine CPU time is
the steadier of the two. The headline ratio's three timings (build-only, engine build-only, after)
are the minima over interleaved rounds — each round runs all three in turn — because consecutive
repeats let a noisy stretch hit one method only (two runs of this file an hour apart measured the
same 50k 100-dim build-only at 2.77 s and 2.29 s). Peak memory (``peak_mem_mib``) comes from one extra, untimed run per method
after its timed runs (``_memory.PeakMemory``: peak RSS above the level before the call, after gc +
malloc_trim, sampled every 2 ms by a thread; the sampler never runs during a timed run). It covers
everything the method needs: for the references that includes our dense per-class kernel they are
handed (the kernel build is part of their time too).

    python benchmarks/bench_select.py            # 10k, 20k, 50k + single-class 10k → results/select.{csv,md}
    python benchmarks/bench_select.py --quick    # small sizes, seconds
    python benchmarks/bench_select_large.py      # 200k one ground set, ImageNet-shaped
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import sys
import time
from typing import Callable

import torch

from coreaug.device import resolve_device
from coreaug.io import csv_text, write_text_atomic
from coreaug.select import facility_location, facility_location_objective
from coreaug.select.budgets import class_budgets
from coreaug.select import compiled as compiled_kernels
from coreaug.select.engine import build_batch, padded_size
from coreaug.select.locality import locality_order
from coreaug.select.similarity import SimilarityKernel

from _memory import PeakMemory

NAIVE_MAX_OPS = 2e10  # Σ_c k_c · n_c² above this, our naive greedy is skipped (minutes on 2 cores)


def make_proxies(n: int, classes: int, seed: int = 0, dim: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    z = 2.0 * torch.randn(n, dim, generator=gen)
    z[torch.arange(n), y % dim] += 3.0
    g = torch.softmax(z, dim=1)
    g[torch.arange(n), y % dim] -= 1.0
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


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple[float, float, object]]:
    """Min wall-clock and CPU time of each ``fn`` over ``rounds`` rounds that run every ``fn`` once
    in turn (the last output kept)."""
    best: dict[str, tuple[float, float, object]] = {k: (math.inf, math.inf, None) for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            w, c, out = timed(fn, 1)
            best[k] = (min(best[k][0], w), min(best[k][1], c), out)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mem_mib(fn: Callable[[], object], device: torch.device = torch.device("cpu")) -> float:
    """Peak memory (MiB) above the starting level during one extra, untimed ``fn()`` (CPU: RSS;
    CUDA: allocator)."""
    with PeakMemory(device) as pm:
        out = fn()
    del out
    return pm.peak / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,20000,50000", help="comma-separated n (10 classes each)")
    ap.add_argument("--single", type=int, default=10000, help="single-class case size (0 to skip)")
    ap.add_argument("--wide", type=int, default=50000,
                    help="size of an extra 10-class case with 100-dim proxies (CIFAR-100-like width; 0 to skip)")
    ap.add_argument("--single-picks", type=int, default=1000)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="sizes 2000,5000 and a 3000/300 single class")
    ap.add_argument("--no-naive", action="store_true", help="skip our naive greedy everywhere")
    ap.add_argument("--repeats", type=int, default=1,
                    help="best of N runs (naive always runs once); build-only, engine build-only and after run "
                         "max(3, N) interleaved rounds")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads for everything (default 1: all competitors single-threaded; "
                         "submodlib is, and apricot's lazy kernel is compiled with parallel=False)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto: where ours runs (the CPU-only references are "
                    "skipped on cuda; timings synchronise the device)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "select.csv"))
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    if args.quick:
        args.sizes, args.single, args.single_picks, args.wide = "2000,5000", 3000, 300, 5000

    refs = {}
    for name, module in (() if device.type != "cpu" else (("submodlib", "submodlib"), ("apricot", "apricot"))):
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
    facility_location(*make_proxies(300, 1, seed=98), 5, greedy="lazy")

    cases = [(int(s), args.classes, None, 10) for s in args.sizes.split(",") if s.strip()]
    if args.wide > 0:
        cases.append((args.wide, args.classes, None, 100))
    if args.single > 0:
        cases.append((args.single, 1, args.single_picks, 10))

    threads = torch.get_num_threads()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {threads} threads, "
          f"{os.cpu_count()} cores visible, load {os.getloadavg()[0]:.2f} (shared: timings are noisy)")
    rows: list[dict[str, object]] = []
    for n, classes, picks, dim in cases:
        x, y = make_proxies(n, classes, seed=n, dim=dim)
        x = x.to(device)
        sizes = torch.bincount(y, minlength=classes).tolist()
        budget = picks if picks is not None else max(1, math.floor(args.fraction * n + 1e-9))
        budgets = class_budgets(sizes, budget, "proportional")
        case = f"{n}x{dim}d/{classes}cls/{sum(budgets)}picks"
        print(f"\n== {case}")
        # method -> (wall s, cpu s, objective, peak MiB, load, note)
        results: dict[str, tuple] = {}

        def build_only() -> None:
            for c in range(classes):
                SimilarityKernel(x[(y == c).to(device)], "exp", force_dense=True)
            _sync(device)

        def engine_build_only() -> None:  # what the default engine builds: ordered, one workspace
            feats = [x[(y == c).to(device)] for c in range(classes)]
            m = padded_size(max(int(f.shape[0]) for f in feats))
            ws = torch.empty(m * m, dtype=x.dtype, device=device)
            for f in feats:
                build_batch([f.index_select(0, locality_order(f))], "exp", workspace=ws)
            _sync(device)

        def make_run(greedy: str, tensor_loop: bool = False) -> Callable[[], object]:
            def run_ours():
                saved = compiled_kernels.AVAILABLE
                compiled_kernels.AVAILABLE = saved and not tensor_loop  # the engine without numba
                try:
                    sel = facility_location(x, y, budget, greedy=greedy, seed=0, threads=args.threads)
                finally:
                    compiled_kernels.AVAILABLE = saved
                _sync(device)
                return sel
            return run_ours

        # the three numbers of the headline ratio are timed in interleaved rounds (min of each), so a
        # noisy stretch of the shared machine hits all three alike
        core = interleaved({"build-only": build_only, "engine build-only": engine_build_only,
                            "after: auto": make_run("auto")}, max(3, args.repeats))
        t, cpu, _ = core["build-only"]
        results["build-only"] = (t, cpu, None, peak_mem_mib(build_only, device), os.getloadavg()[0],
                                 "dense per-class matrices only")
        print(f"  {'build-only':<16} {t:8.2f} s  (cpu {cpu:7.2f} s)   peak {results['build-only'][3]:7.1f} MiB")
        t, cpu, _ = core["engine build-only"]
        results["engine build-only"] = (t, cpu, None, peak_mem_mib(engine_build_only, device), os.getloadavg()[0],
                                        "the default engine's own build: locality order + matrices + block maxima")
        print(f"  {'engine build':<16} {t:8.2f} s  (cpu {cpu:7.2f} s)")
        ours = (("before: lazy", "lazy"), ("after: auto", "auto"), ("tensor loop", "auto"), ("stochastic", "stochastic"),
                ("naive", "naive"))
        for label, greedy in ours:
            ops = sum(k * s * s for k, s in zip(budgets, sizes))
            if greedy == "naive" and (args.no_naive or ops > NAIVE_MAX_OPS):
                note = ("skipped (--no-naive)" if args.no_naive
                        else f"skipped: Σ k·n² = {ops:.1e} > {NAIVE_MAX_OPS:.0e} element-ops")
                print(f"  {label:<16} {note}")
                results[label] = (None, None, None, None, None, note)
                continue
            run_ours = make_run(greedy, tensor_loop=label == "tensor loop")
            if label in core:
                t, cpu, sel = core[label]
            else:
                t, cpu, sel = timed(run_ours, 1 if greedy == "naive" else args.repeats)
            load = os.getloadavg()[0]
            obj = facility_location_objective(x.cpu(), sel.indices, y)
            del sel
            mem = peak_mem_mib(run_ours, device)
            results[label] = (t, cpu, obj, mem, load, f"facility_location(greedy={greedy!r}), end-to-end")
            print(f"  {label:<16} {t:8.2f} s  (cpu {cpu:7.2f} s)   F = {obj:.4f}   peak {mem:7.1f} MiB")
        for name, mod in refs.items():
            run_ref = functools.partial(run_reference, name, x, y, budgets, mod)
            try:
                t, cpu, (tk, to, idx) = timed(run_ref, args.repeats)
                load = os.getloadavg()[0]
                mem = peak_mem_mib(run_ref)
            except Exception as exc:  # a reference failing must not kill the benchmark
                note = f"failed: {type(exc).__name__}: {exc}"
                print(f"  {name:<16} {note}")
                results[name] = (None, None, None, None, None, note)
                continue
            obj = facility_location_objective(x, torch.as_tensor(idx), y)
            results[name] = (t, cpu, obj, mem, load, f"kernel {tk:.2f}s + optimiser {to:.2f}s (last timed run)")
            results[name + "/opt"] = to
            print(f"  {name:<16} {t:8.2f} s  (cpu {cpu:7.2f} s)   F = {obj:.4f}   peak {mem:7.1f} MiB   "
                  f"(kernel {tk:.2f} s + optimiser {to:.2f} s)")
        t_build, c_build = results["build-only"][0], results["build-only"][1]
        t_own_build = results["engine build-only"][0]
        t_after, c_after = results["after: auto"][0], results["after: auto"][1]
        f_before = results["before: lazy"][2]
        for method, val in results.items():
            if method.endswith("/opt"):
                continue
            t, cpu, f, mem, load, note = val
            opt = results.get(method + "/opt")
            rows.append({
                "case": case, "n": n, "classes": classes, "picks": sum(budgets), "method": method,
                "time_s": "" if t is None else f"{t:.3f}",
                "cpu_s": "" if cpu is None else f"{cpu:.3f}",
                "objective": "" if f is None else f"{f:.6f}",
                "x_build": "" if t is None else f"{t / t_build:.3f}",
                "x_after": "" if t is None else f"{t / t_after:.3f}",
                "cpu_x_build": "" if cpu is None else f"{cpu / c_build:.3f}",
                "cpu_x_after": "" if cpu is None else f"{cpu / c_after:.3f}",
                "opt_x_after": "" if opt is None else f"{opt / max(1e-9, t_after - t_own_build):.2f}",
                "F_over_F_before": "" if f is None else f"{f / f_before:.6f}",
                "peak_mem_mib": "" if mem is None else f"{mem:.1f}",
                "threads": threads,
                "load1": "" if load is None else f"{load:.2f}",
                "note": note,
            })

    header = ["case", "method", "time_s", "cpu_s", "x_build", "x_after", "cpu_x_build", "cpu_x_after",
              "opt_x_after", "F_over_F_before", "peak_mem_mib", "load1"]
    titles = ["case", "method", "wall [s]", "cpu [s]", "x build", "x after", "cpu x build", "cpu x after",
              "opt x after", "F/F_before", "peak MiB", "load"]
    widths = [28, 14, 9, 9, 8, 8, 11, 11, 11, 11, 9, 6]
    print("\n" + " ".join(h.ljust(w) for h, w in zip(titles, widths)))
    for r in rows:
        vals = [str(r[h]) if r[h] != "" else "-" for h in header]
        print(" ".join(v.ljust(w) for v, w in zip(vals, widths)) + ("  " + str(r["note"]) if r["time_s"] == "" else ""))
    write_text_atomic(args.out, csv_text(rows, list(rows[0].keys())))
    md = [f"Facility location on this CPU ({threads} thread(s), load {os.getloadavg()[0]:.2f} at the end; "
          "`python benchmarks/bench_select.py`; build-only, engine build-only and after: min of interleaved rounds). "
          "before = the default before issue 9 (per-class lazy greedy), "
          "after = the exact engine (default; on CPU its compiled incremental greedy). x build = wall time / build-only; x after = wall time / after; "
          "cpu x … = the same with process CPU seconds (steadier on a shared machine); "
          "opt x after = reference optimiser wall time / (after − engine build-only), optimiser against optimiser; "
          "engine build-only = the default engine's own build (locality order, matrices and block maxima); "
          "tensor loop = the default engine with its greedy as tensor ops (what runs without numba).", "",
          "| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for r in rows:
        md.append("| " + " | ".join(str(r[h]) if r[h] != "" else "-" for h in header) + " |")
    md_path = os.path.splitext(args.out)[0] + ".md"
    write_text_atomic(md_path, "\n".join(md) + "\n")
    print(f"\nwrote {args.out} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
