"""Facility location on ground sets too large for a dense matrix: exact streamed greedy, and an
approximate sparse k-nearest-neighbour variant.

Nothing ``n × n`` is ever held. Similarities are recomputed on demand in tiles of about 1 MiB
(a block of rows × a block of columns: matmul of augmented vectors, ``sqrt``, transform, then the
reduction, all while the tile is in cache — about 2x faster than whole-row chunks on a CPU).
Memory is ``O(n)`` vectors plus ``O(chunk)`` temporaries: 200,000 points take well under 1 GiB.

* :func:`streamed_greedy` — exact greedy with incremental gains (see :mod:`coreaug.select.engine`):
  one pass for the singleton gains ``Σ_i s_ij`` (and the maximum distance for ``maxdist``), then per
  pick the ``|D|`` similarity rows of the points whose coverage it raised. ``Σ_t |D_t| ≈ 4–5 n``,
  so the whole run costs about 5–6 passes over the ``n²`` similarities (each ``O(n² D)``), whatever
  the budget. Same picks as the dense greedy up to ties and float rounding.
* :func:`knn_greedy` — **approximate**: keep only each point's ``K`` most similar points
  (``s_ij := 0`` for ``j`` outside ``kNN(i)``, one pass to build, ``n·K`` memory), run exact greedy
  on that sparse objective (cheap: ``O(K)`` work per changed point), then compute the weights
  (cluster sizes) and the objective under the *exact* similarity (a streamed ``O(k · n · D)`` pass).
  The sparse objective is a lower bound of the exact one, so the picks can only be worse; the
  objective ratio against the exact greedy is measured in ``benchmarks/bench_select.py`` and
  tested on small data.
"""

from __future__ import annotations

import math

import torch

from coreaug.select.similarity import augmented_factors

__all__ = ["StreamedSimilarity", "streamed_greedy", "knn_graph", "knn_greedy"]

_TILE_BYTES = 1 << 20


class StreamedSimilarity:
    """Similarity tiles of one ground set, recomputed on demand (nothing ``n × n`` is stored).

    Pass ``max_dist`` for ``maxdist`` once it is known (:meth:`column_sums` computes it).
    """

    def __init__(self, x: torch.Tensor, similarity: str, tile_bytes: int = _TILE_BYTES):
        self.left, self.right_t = augmented_factors(x)
        self.n, self.dim = int(x.shape[0]), int(x.shape[1])
        self.similarity = similarity
        self.max_dist: torch.Tensor | float = 0.0
        self.device, self.dtype = x.device, x.dtype
        self.tile_elems = max(1, tile_bytes // (torch.finfo(x.dtype).bits // 8))

    def _cols(self, rows: int) -> int:
        return max(min(1024, self.tile_elems), self.tile_elems // max(1, rows))

    def distances(self, ids: torch.Tensor, c: int, e: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Distances of the points ``ids`` (ascending) to points ``c..e-1``; exact 0 on self-pairs."""
        d = torch.mm(self.left.index_select(0, ids), self.right_t[:, c:e], out=out)
        d.clamp_min_(0.0).sqrt_()
        lo, hi = torch.searchsorted(ids, torch.tensor([c, e], device=ids.device)).tolist()
        if hi > lo:  # rows lo..hi-1 have their own column inside this tile
            r = torch.arange(lo, hi, device=ids.device)
            d[r, ids[lo:hi] - c] = 0.0
        return d

    def transform_(self, d: torch.Tensor) -> torch.Tensor:
        if self.similarity == "exp":
            return d.mul_(-1.0 / self.dim).exp_()
        return d.neg_().add_(self.max_dist)

    def tiles(self, ids: torch.Tensor, row_block: int = 64):
        """Yield ``(a, b, c, e, tile)``: similarities of ``ids[a:b]`` to points ``c..e-1``."""
        m = int(ids.numel())
        for a in range(0, m, row_block):
            b = min(m, a + row_block)
            sub = ids[a:b]
            w = self._cols(b - a)
            for c in range(0, self.n, w):
                e = min(self.n, c + w)
                yield a, b, c, e, self.transform_(self.distances(sub, c, e))

    def column_sums(self) -> torch.Tensor:
        """Singleton gains ``F({j}) = Σ_i s_ij`` (float64); sets ``max_dist`` for ``maxdist``."""
        n = self.n
        ids = torch.arange(n, device=self.device)
        sums = torch.zeros(n, dtype=torch.float64, device=self.device)
        if self.similarity == "exp":
            for _, _, c, e, tile in self.tiles(ids):
                sums[c:e] += tile.sum(dim=0)
            return sums
        dmax = torch.zeros((), dtype=self.dtype, device=self.device)
        for a in range(0, n, 64):
            sub = ids[a : a + 64]
            w = self._cols(int(sub.numel()))
            for c in range(0, n, w):
                e = min(n, c + w)
                d = self.distances(sub, c, e)
                sums[c:e] += d.sum(dim=0)
                dmax = torch.maximum(dmax, d.max())
        self.max_dist = dmax
        return n * dmax.double() - sums  # Σ_i (M − d_ij)

    def column(self, j: int) -> torch.Tensor:
        """``s_ij`` for every point ``i`` (coverage of all points by ``j``)."""
        d = torch.mm(self.left, self.right_t[:, j : j + 1]).squeeze(1)
        d.clamp_min_(0.0).sqrt_()
        d[j] = 0.0
        return self.transform_(d)

    def assign(self, selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each point's most similar element of ``selected`` (position in it; ties → first) and that
        similarity, in ``O(k · n · D)`` time and ``O(tile)`` memory."""
        k = int(selected.numel())
        best = torch.full((self.n,), -math.inf, dtype=self.dtype, device=self.device)
        arg = torch.zeros(self.n, dtype=torch.long, device=self.device)
        srt, perm = torch.sort(selected)  # tiles need ascending ids; map back through perm
        for a, b, c, e, tile in self.tiles(srt, row_block=256):
            # ties must go to the earliest position in `selected`, not in sorted order
            pos = perm[a:b]
            vals, where = tile.max(dim=0)
            if b - a > 1:  # resolve exact ties inside the block by the smallest position
                tied = tile == vals[None, :]
                where = torch.where(tied, pos[:, None], torch.full_like(tile, k, dtype=torch.long)).min(dim=0).values
            else:
                where = pos[where]
            cur_b, cur_a = best[c:e], arg[c:e]
            better = (vals > cur_b) | ((vals == cur_b) & (where < cur_a))
            best[c:e] = torch.where(better, vals, cur_b)
            arg[c:e] = torch.where(better, where, cur_a)
        return arg, best


def streamed_greedy(
    x: torch.Tensor, k: int, similarity: str = "exp", *, tile_bytes: int = _TILE_BYTES
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact greedy facility location on one ground set with incremental gains, nothing ``n × n``.

    Returns ``(order (k,), assign (n,), cur (n,))`` on ``x.device`` (see
    :func:`coreaug.select.engine.greedy_batch`). One host sync per pick (the size of ``D``).
    """
    sim = StreamedSimilarity(x, similarity, tile_bytes)
    n = sim.n
    g = sim.column_sums()
    cur = torch.zeros(n, dtype=x.dtype, device=x.device)
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    order = torch.empty(k, dtype=torch.long, device=x.device)
    for t in range(k):
        p = int(torch.argmax(g))
        order[t] = p
        g[p] = -math.inf
        col = sim.column(p)
        D = (col > cur).nonzero().flatten()
        if D.numel():
            lo = cur[D]
            width = col[D] - lo
            for a, b, c, e, tile in sim.tiles(D):
                tile.sub_(lo[a:b, None]).clamp_min_(0.0)
                torch.minimum(tile, width[a:b, None], out=tile)
                g[c:e] -= tile.sum(dim=0)
            cur[D] = col[D]
            assign[D] = t
    return order, assign, cur


def knn_graph(
    x: torch.Tensor, k_neighbours: int, similarity: str = "exp", *, tile_bytes: int = _TILE_BYTES
) -> tuple[torch.Tensor, torch.Tensor, StreamedSimilarity]:
    """Each point's ``K`` most similar points (itself included) and those similarities.

    One streamed pass: squared distances per tile, running top-K per row (ranking needs neither
    the ``sqrt`` nor the transform, which then run on the ``n·K`` kept values only). Returns
    ``(nbr (n, K) long, val (n, K))`` and the :class:`StreamedSimilarity` (``max_dist`` set).
    """
    sim = StreamedSimilarity(x, similarity, tile_bytes)
    n, K = sim.n, min(int(k_neighbours), sim.n)
    nbr = torch.empty((n, K), dtype=torch.long, device=x.device)
    dist2 = torch.empty((n, K), dtype=x.dtype, device=x.device)
    dmax = torch.zeros((), dtype=x.dtype, device=x.device)
    row_block = max(1, min(256, sim.tile_elems // 1024))
    for a in range(0, n, row_block):
        b = min(n, a + row_block)
        left = sim.left[a:b]
        best_v = torch.full((b - a, K), math.inf, dtype=x.dtype, device=x.device)
        best_i = torch.zeros((b - a, K), dtype=torch.long, device=x.device)
        w = max(sim._cols(b - a), 2 * K)
        for c in range(0, n, w):
            e = min(n, c + w)
            d2 = torch.mm(left, sim.right_t[:, c:e]).clamp_min_(0.0)
            lo, hi = max(a, c), min(b, e)
            if hi > lo:  # self-pairs inside this tile: exact 0
                r = torch.arange(lo, hi, device=x.device)
                d2[r - a, r - c] = 0.0
            if similarity == "maxdist":
                dmax = torch.maximum(dmax, d2.max())
            kk = min(K, e - c)
            v, i = torch.topk(d2, kk, dim=1, largest=False)
            cand_v = torch.cat([best_v, v], dim=1)
            cand_i = torch.cat([best_i, i + c], dim=1)
            v2, pos = torch.topk(cand_v, K, dim=1, largest=False)
            best_v, best_i = v2, cand_i.gather(1, pos)
        nbr[a:b] = best_i
        dist2[a:b] = best_v
    sim.max_dist = dmax.sqrt()
    val = sim.transform_(dist2.sqrt_())
    return nbr, val, sim


def knn_greedy(
    x: torch.Tensor, k: int, k_neighbours: int, similarity: str = "exp", *, tile_bytes: int = _TILE_BYTES
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Approximate greedy on the sparse kNN similarity; weights and objective under the exact one.

    Returns ``(order (k,), assign (n,), best (n,), sparse_objective)``: ``assign``/``best`` are the
    exact nearest-pick assignment and coverage (see :meth:`StreamedSimilarity.assign`).
    """
    nbr, val, sim = knn_graph(x, k_neighbours, similarity, tile_bytes=tile_bytes)
    n, K = nbr.shape
    dev = x.device
    # facility j covers point i with val[i, r] where nbr[i, r] = j; group those entries by j (CSR)
    flat_j = nbr.flatten()
    srt = torch.argsort(flat_j, stable=True)
    rev_i = torch.div(srt, K, rounding_mode="floor")
    rev_v = val.flatten()[srt]
    ptr = torch.zeros(n + 1, dtype=torch.long, device=dev)
    ptr[1:] = torch.cumsum(torch.bincount(flat_j, minlength=n), 0)
    ptr_l = ptr.tolist()
    g = torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, flat_j, val.flatten().double())
    cur = torch.zeros(n, dtype=x.dtype, device=dev)
    order = torch.empty(k, dtype=torch.long, device=dev)
    for t in range(k):
        p = int(torch.argmax(g))
        order[t] = p
        g[p] = -math.inf
        pts, s = rev_i[ptr_l[p] : ptr_l[p + 1]], rev_v[ptr_l[p] : ptr_l[p + 1]]
        up = s > cur[pts]
        if not bool(up.any()):
            continue
        pts, hi = pts[up], s[up]
        lo = cur[pts]
        contrib = (val[pts] - lo[:, None]).clamp_min_(0.0)
        torch.minimum(contrib, (hi - lo)[:, None], out=contrib)
        g.index_add_(0, nbr[pts].flatten(), contrib.flatten().double(), alpha=-1.0)
        cur[pts] = hi
    sparse_objective = float(cur.double().sum())
    assign, best = sim.assign(order)
    return order, assign, best, sparse_objective
