"""The incremental greedy of :mod:`coreaug.select.engine` as one compiled loop per class (CPU).

Same algorithm, same state and same picks (up to float rounding of the gains) as the tensor
version in :func:`coreaug.select.engine.greedy_batch`, compiled with numba: on a CPU every greedy
step is a few scans of ``O(n)`` plus the contribution of the changed rows, and as tensor ops each
of those pays a dispatch and a temporary (≈ 30 ops per step, tens of microseconds each), which
made the per-step overhead, not the arithmetic, the cost of small and medium classes. Here a step
is straight-line code over the matrix, no temporaries, float64 gains updated in place.

The contributions are computed in float64 too, also for a float32 matrix (each ``s_ij − lo`` of two
float32 entries is then exact), as the tensor version does. With float32 differences the gains, which
are ``Σ_i S[i, j]`` minus thousands of subtracted contributions, drifted from their float64 values:
measured on 700-point float32 classes, a pick's float64 gain was up to 7.8e-5 (relative) below the
best one's (1.4e-3 reported on larger classes); with float64 contributions the picks follow the float64
gains (up to exact ties).

Per step ``t`` of one class (``s_ij = S[i, j]``, ``cur`` = coverage, ``g`` = gains):

1. ``p = argmax g`` (first index on ties), ``g_p = −∞``;
2. for every point ``i`` with ``s_ip > cur_i`` (``s_ip`` read from row ``p``, ``s`` being
   symmetric up to rounding): ``lo = cur_i``, ``w = s_ip − lo``, and for every candidate ``j``
   ``g_j −= min(relu(s_ij − lo), w)`` — only over the column blocks of row ``i`` whose maximum
   exceeds ``lo`` (elsewhere the term is 0), consecutive live blocks as one contiguous range;
   then ``cur_i = s_ip``, ``assign_i = t``.

Compiled on first use and cached on disk by numba: measured here ≈ 3.5 s for the first call in a
fresh environment, ≈ 1.2 s for the first call of each later process (numba loading its cache),
then nothing.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import torch

__all__ = ["AVAILABLE", "greedy_batch_compiled"]

# numba is a dependency; without it the engine falls back to its tensor loop. It is imported on
# first use only (≈ 0.3 s), so that importing coreaug stays as fast as torch allows.
AVAILABLE = importlib.util.find_spec("numba") is not None


@functools.cache
def _compiled_greedy():
    """The compiled kernels, built once per process (numba's on-disk cache makes it quick)."""
    import numba

    def jit(fn, **flags):
        try:
            return numba.njit(cache=True, nogil=True, **flags)(fn)
        except RuntimeError:  # no writable cache location (read-only install and home): compile per process
            return numba.njit(cache=False, nogil=True, **flags)(fn)

    global _subtract_contributions  # _greedy_class must see the compiled callee when it compiles
    # fastmath: min/max without NaN semantics, so LLVM can vectorise the inner loop
    _subtract_contributions = jit(_subtract_contributions, fastmath=True)
    return jit(_greedy_class)


def _subtract_contributions(row, a, e, lo, w, zero, g):  # pragma: no cover - compiled
    # lo, w, zero are float64: a float32 row[j] is widened before the subtraction, so every contribution
    # is exact up to one float64 rounding (float32 differences lost up to 1e-4 of a gain, see the docstring)
    for j in range(a, e):
        g[j] -= min(max(row[j] - lo, zero), w)


def _greedy_class(S, block_max, n, k, block, zero, g, rank, order, assign, cur):  # pragma: no cover - compiled
    nblk = (n + block - 1) // block
    for i in range(n):
        cur[i] = zero
        assign[i] = 0
    for t in range(k):
        best = -np.inf
        p = 0
        for j in range(n):  # argmax; exact ties go to the smallest rank
            v = g[j]
            if v > best or (v == best and rank[j] < rank[p]):
                best = v
                p = j
        order[t] = p
        g[p] = -np.inf
        rowp = S[p]
        for i in range(n):
            hi = np.float64(rowp[i])
            lo = np.float64(cur[i])
            if not hi > lo:
                continue
            w = hi - lo  # float64: exact for float32 entries
            cur[i] = hi
            assign[i] = t
            row = S[i]
            if t == 0:  # cur = 0: every block is live
                _subtract_contributions(row, 0, n, lo, w, zero, g)
                continue
            bm = block_max[i]
            b = 0
            while b < nblk:
                if bm[b] > lo:
                    first = b
                    while b < nblk and bm[b] > lo:
                        b += 1
                    _subtract_contributions(row, first * block, min(n, b * block), lo, w, zero, g)
                b += 1


def greedy_batch_compiled(
    S: torch.Tensor,
    block_max: torch.Tensor,
    sizes: list[int],
    gains0: torch.Tensor,
    budgets: list[int],
    block: int,
    *,
    tie_rank: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`coreaug.select.engine.greedy_batch` for CPU tensors, one compiled loop per class.

    Same inputs (the fields of a :class:`~coreaug.select.engine.DenseBatch`, and ``tie_rank``:
    among exactly equal gains the smallest rank wins, default the smallest position) and the same
    outputs: ``order`` ``(C, k_max)`` (−1 past a class's budget), ``assign`` ``(C, m)``, ``cur``
    ``(C, m)``.
    """
    if not AVAILABLE:
        raise RuntimeError("numba is not installed")
    greedy_class = _compiled_greedy()
    C, m, _ = S.shape
    kmax = int(max(budgets))
    order = torch.full((C, kmax), -1, dtype=torch.long)
    assign = torch.zeros((C, m), dtype=torch.long)
    cur = torch.zeros((C, m), dtype=S.dtype)
    g = gains0.clone()
    zero = np.float64(0.0)  # contributions in float64 whatever the matrix dtype (module docstring)
    if tie_rank is None:
        tie_rank = torch.arange(m).expand(C, m)
    rank_np = tie_rank.to(torch.long).contiguous().numpy()
    S_np, bm_np, g_np = S.numpy(), block_max.numpy(), g.numpy()
    order_np, assign_np, cur_np = order.numpy(), assign.numpy(), cur.numpy()
    for c in range(C):
        n, k = int(sizes[c]), int(budgets[c])
        if k == 0:
            continue
        greedy_class(
            S_np[c], bm_np[c], n, k, int(block), zero, g_np[c], rank_np[c], order_np[c], assign_np[c], cur_np[c]
        )
    return order, assign, cur
