"""Per-example Jacobians: spectra's vmap∘jacrev against an autograd loop, jacfwd and BackPACK.

For each case (model × parameter set × outputs × n) every method computes the same J (rows
example-major, columns in ``spectra.parameter_layout`` order) and is timed after a warm-up. The
reference for the time ratio and the max abs difference is ``loop``: ``model(x_i)`` then one
``torch.autograd.grad`` per output (the plain autograd loop).

* ``loop_functional`` — ``spectra.jacobian_loop`` (the same loop through functional_call; the
  tests' reference)
* ``vmap_jacrev``  — ``spectra.jacobian`` (functional_call + vmap(jacrev), chunked)
* ``vmap_jacfwd``  — vmap(jacfwd) (forward mode: one tangent per parameter; only run when p is
  small, since memory grows like p × activations)
* ``backpack``     — BackPACK ``BatchGrad`` (per-layer batched gradients from hooks), if
  ``backpack-for-pytorch`` is importable; one backward pass per output; in-place ReLUs are
  switched off on its copy of the model (BackPACK cannot hook them). Not a dependency.

Timing: min over ``--repeats`` rounds, methods interleaved in each round (the machine may be
shared, so min is the least noisy statistic). Peak memory, in one extra run per method (never
during a timed run — the sampler thread would steal the GIL from the Python-heavy loop): CUDA → ``max_memory_allocated`` above
the level before the call; CPU → peak RSS above the level before the call (after gc +
malloc_trim), sampled every 2 ms by a thread (includes the returned J; memory the allocator
still holds from earlier calls is not counted, so treat CPU numbers as indicative). The 1-minute
load average is recorded with each row: on a shared CPU the loop (thousands of tiny ops, each a
parallel region) slows down far more than the batched methods when cores are oversubscribed, which
inflates the ratios — compare rows measured at low load, or pass ``--threads 1``.
Results: printed table + ``benchmarks/results/jacobian.csv`` (written atomically).

    python benchmarks/bench_jacobian.py --device auto          # full run (several minutes on 2 cores)
    python benchmarks/bench_jacobian.py --quick                # smoke run
    python benchmarks/bench_jacobian.py --gram-n 1000          # ResNet-20 blockwise Gram, 1,000 examples
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, jacfwd, vmap

from coreaug.device import resolve_device
from coreaug.io import csv_text, write_text_atomic
from coreaug.models import build_model
from coreaug.models.small import SmallCNN
from spectra import jacobian, jacobian_loop, parameter_layout, select_parameters

from _memory import PeakMemory

RESULTS = Path(__file__).resolve().parent / "results" / "jacobian.csv"
JACFWD_MAX_P = 5000


# ------------------------------------------------------------------------------------------------
# methods: each maps (model, x, y or None, param names) -> J
# ------------------------------------------------------------------------------------------------


def m_loop(model, x, y, names):
    """The plain reference: model(x_i) and one torch.autograd.grad per output, no functional_call."""
    model.eval()
    named = dict(model.named_parameters())
    leaves = [named[n] for n in names]
    rows = []
    for i in range(x.shape[0]):
        out = model(x[i : i + 1])[0]
        outs = range(out.shape[0]) if y is None else [int(y[i])]
        for c in outs:
            grads = torch.autograd.grad(out[c], leaves, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def m_loop_functional(model, x, y, names):
    """``spectra.jacobian_loop``: the same loop through functional_call (the tests' reference)."""
    return jacobian_loop(model, x, params=names, targets=y)


def m_vmap_jacrev(model, x, y, names, chunk_size=256):
    return jacobian(model, x, params=names, targets=y, chunk_size=chunk_size)


def m_vmap_jacfwd(model, x, y, names, chunk_size=32):
    model.eval()
    theta = {n: p.detach() for n, p in model.named_parameters() if n in set(names)}
    rest = {n: p.detach() for n, p in model.named_parameters() if n not in theta}
    rest.update(dict(model.named_buffers()))

    def single(th, xi):
        return functional_call(model, (th, rest), (xi.unsqueeze(0),)).squeeze(0)

    def single_t(th, xi, ti):
        return single(th, xi).gather(0, ti.reshape(1)).squeeze(0)

    blocks = []
    for s in range(0, x.shape[0], chunk_size):
        xs = x[s : s + chunk_size]
        if y is None:
            tree = vmap(jacfwd(single), in_dims=(None, 0))(theta, xs)
            blocks.append(torch.cat([tree[n].reshape(xs.shape[0], tree[n].shape[1], -1) for n in names], -1).reshape(-1, sum(theta[n].numel() for n in names)))
        else:
            tree = vmap(jacfwd(single_t), in_dims=(None, 0, 0))(theta, xs, y[s : s + chunk_size])
            blocks.append(torch.cat([tree[n].reshape(xs.shape[0], -1) for n in names], -1))
    return torch.cat(blocks)


def _backpack_model(model):
    from backpack import extend

    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.ReLU):
            mod.inplace = False
    return extend(m).eval()


def m_backpack(bp_model, x, y, names):
    from backpack import backpack
    from backpack.extensions import BatchGrad

    params = dict(bp_model.named_parameters())
    for n, p in params.items():
        p.requires_grad_(n in set(names))
    per_output = []
    k = 1 if y is not None else None
    c = 0
    while k is None or c < k:
        # BackPACK frees its stored module outputs after a backward: one forward per output
        out = bp_model(x)
        k = out.shape[1] if k is None else k
        loss = out.gather(1, y[:, None]).sum() if y is not None else out[:, c].sum()
        for p in params.values():
            p.grad = None
        with backpack(BatchGrad()):
            loss.backward()
        per_output.append(torch.cat([params[n].grad_batch.reshape(x.shape[0], -1) for n in names], 1))
        c += 1
    if y is not None:
        return per_output[0]
    return torch.stack(per_output, 1).reshape(-1, per_output[0].shape[1])  # example-major rows


# ------------------------------------------------------------------------------------------------
# cases
# ------------------------------------------------------------------------------------------------


def build_cases(quick: bool):
    n_small = [64] if quick else [128, 512]
    n_resnet = [32] if quick else [128]
    cases = [
        # (case name, model factory, input shape, params, outputs, n list)
        ("cnn", lambda: build_model("cnn", 10, in_channels=1, image_size=8), (1, 8, 8), "all", "true-class", n_small),
        ("cnn", lambda: build_model("cnn", 10, in_channels=1, image_size=8), (1, 8, 8), "all", "all-10", n_small[:1]),
        ("cnn-w4", lambda: SmallCNN(1, 10, width=4), (1, 8, 8), "all", "true-class", n_small[:1]),
        ("resnet20", lambda: build_model("resnet20", 10, in_channels=3, image_size=32), (3, 32, 32), "all", "true-class", n_resnet),
        ("resnet20-slice", lambda: build_model("resnet20", 10, in_channels=3, image_size=32), (3, 32, 32),
         ["layers.8", "fc"], "true-class", n_resnet),
        ("resnet20-fc", lambda: build_model("resnet20", 10, in_channels=3, image_size=32), (3, 32, 32),
         "last", "true-class", n_resnet),
    ]
    return cases


def _backpack_available() -> bool:
    try:
        import backpack  # noqa: F401
    except Exception:
        return False
    return True


def run(args) -> list[dict]:
    device = resolve_device(args.device)
    torch.manual_seed(0)
    rows: list[dict] = []
    have_bp = _backpack_available()
    for case, factory, shape, params, outputs, ns in build_cases(args.quick):
        if args.cases and case not in args.cases:
            continue
        model = factory().to(device).eval()
        with torch.no_grad():  # non-trivial BatchNorm running statistics
            for mod in model.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.2, 0.2)
                    mod.running_var.uniform_(0.5, 1.5)
        names = select_parameters(model, params)
        p = parameter_layout(model, names)[-1].stop
        methods: dict[str, Callable] = {"loop": m_loop, "loop_functional": m_loop_functional,
                                        "vmap_jacrev": m_vmap_jacrev}
        notes: dict[str, str] = {}
        if p <= JACFWD_MAX_P:
            methods["vmap_jacfwd"] = m_vmap_jacfwd
        else:
            notes["vmap_jacfwd"] = f"skipped: p={p} > {JACFWD_MAX_P} (forward mode needs p tangents)"
        if have_bp:
            try:
                bp = _backpack_model(model)
                xx = torch.randn(2, *shape, device=device)
                m_backpack(bp, xx, torch.zeros(2, dtype=torch.long, device=device), names)
                methods["backpack"] = lambda m, x, y, nm, _bp=bp: m_backpack(_bp, x, y, nm)
            except Exception as exc:  # BackPACK does not support every module (e.g. torch.relu in forward)
                notes["backpack"] = f"unsupported: {type(exc).__name__}"
        else:
            notes["backpack"] = "not installed"
        for n in ns:
            g = torch.Generator().manual_seed(n)
            x = torch.randn(n, *shape, generator=g).to(device)
            y = torch.randint(0, 10, (n,), generator=g).to(device) if outputs == "true-class" else None
            # warm-up (vmap tracing, lazy imports, allocator)
            for fn in methods.values():
                fn(model, x[:4], None if y is None else y[:4], names)
            times = {k: float("inf") for k in methods}
            mem: dict[str, int] = {}
            results: dict[str, torch.Tensor] = {}
            # timing runs without the memory sampler (its thread competes for the GIL and would
            # slow the Python-heavy loop far more than the batched methods)
            for rep in range(args.repeats):
                for k, fn in methods.items():
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    t0 = time.perf_counter()
                    J = fn(model, x, y, names)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    times[k] = min(times[k], time.perf_counter() - t0)
                    del J
            # one more run per method for peak memory and the values
            for k, fn in methods.items():
                with PeakMemory(device) as pm:
                    J = fn(model, x, y, names)
                mem[k] = pm.peak
                results[k] = J.detach().double().cpu()
                del J
            ref = results["loop"]
            scale = float(ref.abs().max())
            for k in methods:
                diff = float((results[k] - ref).abs().max())
                rows.append({
                    "case": case, "device": str(device), "n": n, "outputs": outputs,
                    "params": params if isinstance(params, str) else "+".join(params), "p": p,
                    "rows": ref.shape[0], "method": k, "time_s": round(times[k], 4),
                    "speedup_vs_loop": round(times["loop"] / times[k], 2),
                    "peak_mem_mib": round(mem[k] / 2**20, 1), "max_abs_diff": f"{diff:.3g}",
                    "rel_diff": f"{diff / scale if scale else 0.0:.3g}", "threads": torch.get_num_threads(),
                    "loadavg_1m": round(os.getloadavg()[0], 2), "note": "",
                })
                _print_row(rows[-1])
            for k, note in notes.items():
                rows.append({"case": case, "device": str(device), "n": n, "outputs": outputs,
                             "params": params if isinstance(params, str) else "+".join(params), "p": p,
                             "rows": ref.shape[0], "method": k, "time_s": "", "speedup_vs_loop": "",
                             "peak_mem_mib": "", "max_abs_diff": "", "rel_diff": "", "threads": torch.get_num_threads(),
                             "loadavg_1m": round(os.getloadavg()[0], 2), "note": note})
                _print_row(rows[-1])
            del results, ref
    return rows


def run_gram(args) -> dict:
    """ResNet-20 Gram (true-class NTK) over ``--gram-n`` examples, blockwise; time + peak memory.

    A few entries are checked against dot products of per-example gradients from autograd.
    """
    from spectra import gram_matrix, singular_values_from_gram

    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model("resnet20", 10, in_channels=3, image_size=32).to(device).eval()
    n = args.gram_n
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    p = sum(q.numel() for q in model.parameters())
    budget = args.gram_block_mib * 2**20
    with PeakMemory(device) as pm:
        t0 = time.perf_counter()
        G = gram_matrix(model, x, targets=y, max_block_bytes=budget, chunk_size=64)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
    s = singular_values_from_gram(G.double())
    # spot check G[i, j] = <∇θ f_{y_i}(x_i), ∇θ f_{y_j}(x_j)>
    def grad_row(i):
        out = model(x[i : i + 1])[0, y[i]]
        return torch.cat([t.reshape(-1) for t in torch.autograd.grad(out, list(model.parameters()))])
    pairs = [(0, 0), (0, n - 1), (n // 2, n // 3)]
    err = max(abs(float(grad_row(i) @ grad_row(j)) - float(G[i, j])) / max(1e-12, float(G[i, i].abs())) for i, j in pairs)
    full_j_mib = n * p * 4 / 2**20
    res = {"model": "resnet20", "device": str(device), "n": n, "p": p, "block_budget_mib": args.gram_block_mib,
           "seconds": round(dt, 1), "peak_mem_mib": round(pm.peak / 2**20, 1),
           "materialised_J_would_be_mib": round(full_j_mib, 1), "sigma_max": float(s[0]), "sigma_min": float(s[-1]),
           "spot_check_rel_err": f"{err:.2g}"}
    print(res)
    return res


FIELDS = ["case", "device", "n", "outputs", "params", "p", "rows", "method", "time_s", "speedup_vs_loop",
          "peak_mem_mib", "max_abs_diff", "rel_diff", "threads", "loadavg_1m", "note"]
_header_printed = False


def _print_row(row: dict) -> None:
    global _header_printed
    widths = [15, 6, 5, 10, 12, 7, 5, 15, 8, 8, 9, 9, 9, 3, 6, 0]
    if not _header_printed:
        print(" ".join(f"{f[:w]:<{w}}" if w else f for f, w in zip(FIELDS, widths)))
        _header_printed = True
    print(" ".join(f"{str(row[f])[:w]:<{w}}" if w else str(row[f]) for f, w in zip(FIELDS, widths)), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small n, one repeat (smoke test)")
    ap.add_argument("--out", default=str(RESULTS), help="CSV path (default benchmarks/results/jacobian.csv)")
    ap.add_argument("--cases", nargs="*", default=None,
                    help="only these cases (cnn, cnn-w4, resnet20, resnet20-slice, resnet20-fc)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--gram-n", type=int, default=0,
                    help="instead of the table: time the blockwise ResNet-20 Gram over this many examples")
    ap.add_argument("--gram-block-mib", type=int, default=512, help="byte budget of one Jacobian block (MiB)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gram_n:
        res = run_gram(args)
        out = Path(args.out).with_name("jacobian_gram.json")
        import json

        write_text_atomic(out, json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")
        return 0
    if args.quick:
        args.repeats = 1
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {resolve_device(args.device)}")
    rows = run(args)
    write_text_atomic(args.out, csv_text(rows, FIELDS))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
