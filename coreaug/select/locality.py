"""A locality-preserving order of points: nearby points get nearby positions.

Facility location's incremental greedy (:mod:`coreaug.select.engine`) only needs, for a point
``i`` whose coverage rose from ``lo_i``, the candidates ``j`` with ``s_ij > lo_i`` — the points
closer to ``i`` than its nearest pick so far, a small ball around ``i`` after the first few picks.
If nearby points sit at nearby positions, those entries of row ``i`` fall into a few contiguous
column blocks and every other block can be skipped by its maximum.

:func:`locality_order` sorts the points along a Z-order (Morton) curve over their top principal
components on an isotropic grid: one small eigendecomposition and one sort. Measured on 5,000
10-dim gradient proxies, 500 picks, blocks of 64 (similarity entries the greedy reads after its
first step, in units of ``n²``): original order 3.37, Morton over the top 3 / 4 / 6 components
0.94 / 0.91 / 0.90, recursive PCA bisection 0.85 — but the bisection took ~6x longer (a pass
over all points per level), so the Morton order was kept.

The order only changes how much work the greedy does, never what it computes (up to the
tie-break among exactly equal gains, which follows the position).
"""

from __future__ import annotations

import torch

__all__ = ["locality_order"]


def _spread_table(dims: int, bits: int, device: torch.device) -> torch.Tensor:
    """``table[v]`` = the bits of ``v`` moved ``dims`` apart (bit ``b`` → bit ``b·dims``)."""
    v = torch.arange(1 << bits, device=device)
    out = torch.zeros_like(v)
    for b in range(bits):
        out |= ((v >> b) & 1) << (b * dims)
    return out


def locality_order(x: torch.Tensor, *, dims: int = 4, bits: int = 8, sketch_dim: int = 16) -> torch.Tensor:
    """Permutation of the rows of ``x`` along a Z-order curve over its top ``dims`` principal components.

    Args:
        x: ``(n, d)`` points.
        dims: principal components used (fewer if ``d`` or ``n`` is smaller).
        bits: grid resolution per component (``dims · bits ≤ 62``).
        sketch_dim: points of more dimensions are first projected to this many by a fixed
            Gaussian matrix, so the eigendecomposition stays ``sketch_dim × sketch_dim``.

    Returns:
        ``perm`` (``(n,)`` long, on ``x.device``): ``x[perm]`` is the ordered set. Deterministic for
        fixed inputs (ties in the curve key keep the original order). Cost: an ``n × d × 16``
        sketch (``d > 16``), one ``16 × 16`` covariance and eigendecomposition, an ``n × dims``
        projection and one sort.
    """
    n, d = int(x.shape[0]), int(x.shape[1])
    dev = x.device
    q = max(1, min(dims, d, n))
    if n <= 2:
        return torch.arange(n, device=dev)
    if q * bits > 62:
        raise ValueError(f"dims · bits must be at most 62, got {q} · {bits}")
    z = x
    if d > sketch_dim:  # a fixed random projection keeps distances roughly (Johnson–Lindenstrauss)
        gen = torch.Generator().manual_seed(0)
        z = z @ torch.randn(d, sketch_dim, generator=gen).to(device=dev, dtype=z.dtype)
    z = z.double()
    z = z - z.mean(dim=0, keepdim=True)
    _, vecs = torch.linalg.eigh(z.T @ z)  # ascending eigenvalues: the last q columns are the top
    proj = z @ vecs[:, -q:]
    lo, hi = proj.aminmax(dim=0)
    cells = (1 << bits) - 1
    # one cell size for every component (the widest spans the grid): distances stay isotropic and a
    # component of (near) zero variance falls into one cell instead of blowing its rounding noise up
    cell = float((hi - lo).max()) / cells
    if not cell > 0:  # all points equal
        return torch.arange(n, device=dev)
    grid = ((proj - lo) / cell).round_().long().clamp_(0, cells)
    table = _spread_table(q, bits, dev)
    key = torch.zeros(n, dtype=torch.long, device=dev)
    for c in range(q):
        key |= table.index_select(0, grid[:, c]) << c
    return torch.argsort(key, stable=True)
