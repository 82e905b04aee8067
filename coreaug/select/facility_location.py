"""Facility-location coresets (CRAIG; the selector of Liu & Mirzasoleiman 2022).

Per class ``c`` with ground set ``V_c`` and budget ``k_c``, greedily maximise

    F(S) = Σ_{i∈V_c} max_{j∈S} s_ij,        F(∅) = 0,

a monotone submodular function (``s ≥ 0``), so greedy gets ``F(S) ≥ (1 − 1/e)·OPT`` (Nemhauser,
Wolsey & Fisher 1978). With ``s_ij = M − ‖g_i − g_j‖`` maximising F minimises
``Σ_i min_{j∈S} ‖g_i − g_j‖``, which bounds the gradient error ``‖Σ_{i∈V} g_i − Σ_{j∈S} γ_j g_j‖``
when ``γ_j`` = number of points assigned to ``j`` (Mirzasoleiman, Bilmes & Leskovec 2020).

Greedy state is the coverage vector ``cur_i = max_{j∈S} s_ij``; the marginal gain of ``j`` is
``Δ(j|S) = Σ_i relu(s_ij − cur_i)`` (one similarity row, ``O(n)``), and adding ``j`` sets
``cur ← max(cur, s_j·)``. Three optimisers, all running to the full budget (no stop on zero gain,
like the official code):

* ``"naive"``: every step evaluates every remaining candidate — ``O(k · n²)``; the reference.
* ``"lazy"`` (default; Minoux 1978): stale gains are upper bounds (submodularity), kept in a
  vector; each round takes the top ``lazy_batch`` candidates by bound and re-evaluates the stale
  ones *together* (one ``b × n`` tensor op); once the top candidate's value is fresh it is the
  exact argmax. Same result as naive up to ties/float rounding, usually ``O(k · few · n)``.
* ``"stochastic"`` (Mirzasoleiman et al. 2015, "Lazier than lazy greedy"): each step evaluates a
  uniform sample of ``⌈(n/k) · ln(1/ε)⌉`` remaining candidates and takes the best;
  ``E[F(S)] ≥ (1 − 1/e − ε)·OPT`` at ``O(n · ln(1/ε))`` evaluations per class in total.

and the engine used by default (``"auto"``), exact like naive/lazy but batched over classes and run
on the features' device (:mod:`coreaug.select.engine`, :mod:`coreaug.select.streamed`):

* ``"incremental"``: gains updated only where coverage changed, reading only the column blocks
  that can still contribute (points in a locality order, block maxima from the build); on CPU a
  compiled loop per class (numba), elsewhere classes of similar size stacked into one padded
  ``(C, m, m)`` tensor and stepped together; the CPU default.
* ``"sweep"``: the same batches, gains recomputed from the coverage every step with no host sync
  inside the loop; the CUDA default.
* a class whose dense matrix exceeds ``memory_budget`` (e.g. ``per_class="none"`` on a large set,
  or a class of ≥ 16,385 points) runs the exact *streamed* greedy instead: similarity tiles
  recomputed on the fly, ``O(n)`` memory; ``knn=K`` swaps in the approximate sparse
  K-nearest-neighbour similarity for every class.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch

from coreaug.device import resolve_device
from coreaug.errors import SelectionError
from coreaug.select.base import Selection, as_features, as_labels, classes_and_members, resolve_total_budget
from coreaug.select.budgets import PER_CLASS_MODES, check_explicit_budgets, class_budgets
from coreaug.select.engine import (
    build_batch,
    counts_from_assign,
    default_step_rule,
    greedy_batch,
    padded_size,
    plan_batches,
    runs_compiled,
)
from coreaug.select.locality import locality_order
from coreaug.select.settings import EngineSettings, GreedyResult, greedy_rule
from coreaug.select.similarity import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MEMORY_BUDGET,
    SIMILARITIES,
    SimilarityKernel,
)
from coreaug.select.streamed import knn_greedy, streamed_greedy

__all__ = [
    "GREEDY_METHODS",
    "DEFAULT_BATCH_BYTES",
    "facility_location",
    "greedy_facility_location",
    "facility_location_objective",
    "cpu_threads",
]

GREEDY_METHODS: tuple[str, ...] = ("auto", "incremental", "sweep", "lazy", "naive", "stochastic")
ENGINE_METHODS: tuple[str, ...] = ("auto", "incremental", "sweep")  # batched, on the features' device
DEFAULT_BATCH_BYTES = 256 << 20  # padded (C, m, m) similarity tensor of one batch of classes


# ---------------------------------------------------------------------------------------------
# optimisers over one ground set
# ---------------------------------------------------------------------------------------------
def _gains_(rows: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """Marginal gains Δ(j|S) = Σ_i relu(s_ji − cur_i) of fresh (owned) similarity rows, in place."""
    return rows.sub_(cur).clamp_min_(0.0).sum(dim=1)


def _naive(kernel: SimilarityKernel, k: int) -> tuple[list[int], torch.Tensor]:
    n = kernel.n
    cur = torch.zeros(n, dtype=kernel.dtype, device=kernel.device)
    taken = torch.zeros(n, dtype=torch.bool, device=kernel.device)
    gains = torch.empty(n, dtype=kernel.dtype, device=kernel.device)
    order: list[int] = []
    for _ in range(k):
        if order:
            for a, b, block in kernel.row_blocks():
                gains[a:b] = (block - cur).clamp_min_(0.0).sum(dim=1)
        else:
            gains.copy_(kernel.row_sums)  # F({j}) with cur = 0
        gains.masked_fill_(taken, -math.inf)
        j = int(torch.argmax(gains))  # first index on ties
        order.append(j)
        taken[j] = True
        cur = torch.maximum(cur, kernel.rows(torch.tensor([j], device=kernel.device))[0])
    return order, cur


def _lazy(kernel: SimilarityKernel, k: int, batch: int) -> tuple[list[int], torch.Tensor]:
    n = kernel.n
    dev = kernel.device
    cur = torch.zeros(n, dtype=kernel.dtype, device=dev)
    ub = kernel.row_sums.clone()  # exact gains w.r.t. the empty set
    stamp = torch.zeros(n, dtype=torch.long, device=dev)  # step at which ub[j] was last exact
    order: list[int] = []
    evaluations = 0
    for t in range(k):
        m = min(batch, n - t)  # only the n − t unselected points have finite bounds
        while True:
            _, idx = torch.topk(ub, m)
            stale = stamp.index_select(0, idx) != t
            if not bool(stale[0]):
                break  # top bound is exact and ≥ every other bound → it is the argmax
            cand = idx[stale]
            g = _gains_(kernel.rows(cand), cur)
            ub.index_copy_(0, cand, g)
            stamp.index_fill_(0, cand, t)
            evaluations += int(cand.numel())
        j = idx[:1]
        order.append(int(j))
        cur = torch.maximum(cur, kernel.rows(j)[0])
        ub.index_fill_(0, j, -math.inf)
        # bounds stamped t become stale at step t + 1 automatically
    kernel.last_evaluations = evaluations
    return order, cur


def _stochastic(
    kernel: SimilarityKernel, k: int, epsilon: float, generator: torch.Generator
) -> tuple[list[int], torch.Tensor]:
    n = kernel.n
    dev = kernel.device
    cur = torch.zeros(n, dtype=kernel.dtype, device=dev)
    sample = max(1, math.ceil(n / k * math.log(1.0 / epsilon)))
    remaining = torch.arange(n)  # CPU; order preserved for determinism
    order: list[int] = []
    for _ in range(k):
        r = remaining.numel()
        if sample >= r:
            pos = torch.arange(r)
        else:
            pos = torch.randperm(r, generator=generator)[:sample]
        cand = remaining[pos].to(dev)
        rows = kernel.rows(cand)
        g = (rows - cur).clamp_min_(0.0).sum(dim=1)  # rows reused below: no in-place
        b = int(torch.argmax(g))
        j = int(cand[b])
        order.append(j)
        cur = torch.maximum(cur, rows[b])
        keep = torch.ones(r, dtype=torch.bool)
        keep[int(pos[b])] = False
        remaining = remaining[keep]
    return order, cur


def greedy_facility_location(
    features: torch.Tensor,
    k: int,
    *,
    greedy: str = "lazy",
    similarity: str = "exp",
    epsilon: float = 0.01,
    lazy_batch: int = 16,
    generator: torch.Generator | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    force_dense: bool | None = None,
    threads: int | None = 1,
    knn: int | None = None,
) -> GreedyResult:
    """Greedy facility location on one ground set (no classes, no validation of ``features``).

    Returns a :class:`~coreaug.select.settings.GreedyResult`: ``order`` (picks in greedy order, on
    CPU), ``counts`` (cluster size of each pick, same order: points whose most similar pick it is;
    ties → the earlier pick), ``objective`` (F(S)) and ``dense`` (whether the n×n matrix was held).
    ``threads`` applies to the greedy loops only (see :func:`cpu_threads`). ``greedy`` and ``knn``
    as in :func:`facility_location` (``force_dense=False`` selects the streamed engine).
    """
    if greedy not in GREEDY_METHODS:
        raise SelectionError(f"unknown greedy method {greedy!r}; choose one of: {', '.join(GREEDY_METHODS)}")
    n = int(features.shape[0])
    if not 1 <= k <= n:
        raise SelectionError(f"budget {k} must be between 1 and the ground-set size {n}")
    if greedy in ENGINE_METHODS or knn is not None:
        if similarity not in SIMILARITIES:
            raise SelectionError(f"unknown similarity {similarity!r}; choose one of: {', '.join(SIMILARITIES)}")
        itemsize = torch.finfo(features.dtype).bits // 8
        dense = n * n * itemsize <= memory_budget if force_dense is None else bool(force_dense)
        with torch.no_grad():
            (order, counts, obj), = _engine_classes(
                features, [torch.arange(n)], [int(k)], greedy=greedy, similarity=similarity, knn=knn,
                memory_budget=memory_budget if dense else -1, batch_bytes=max(memory_budget, n * n * itemsize),
                chunk_bytes=chunk_bytes, threads=threads,
            )
        return GreedyResult(order, counts, obj, dense and knn is None, None)
    kernel = SimilarityKernel(
        features, similarity, memory_budget=memory_budget, chunk_bytes=chunk_bytes, force_dense=force_dense
    )
    with torch.no_grad():
        if greedy == "naive":
            order, cur = _naive(kernel, k)
        elif greedy == "lazy":
            with cpu_threads(threads, kernel.device):
                order, cur = _lazy(kernel, k, max(1, int(lazy_batch)))
        else:
            if not 0.0 < epsilon < 1.0:
                raise SelectionError(f"epsilon must be in (0, 1), got {epsilon}")
            with cpu_threads(threads, kernel.device):
                order, cur = _stochastic(kernel, k, epsilon, generator or torch.Generator().manual_seed(0))
        sel = torch.tensor(order, dtype=torch.long, device=kernel.device)
        assign, _ = kernel.assign(sel)
        counts = torch.bincount(assign, minlength=k)
    return GreedyResult(sel.cpu(), counts.cpu(), float(cur.double().sum()), kernel.dense,
                        getattr(kernel, "last_evaluations", None))


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def cpu_threads(threads: int | None, device: torch.device) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)`` on CPU, restoring the old value after.

    The greedy loops are long sequences of small tensor ops (a few rows × n); OpenMP fork/join
    costs more than it saves there, dramatically so when other processes share the cores
    (10k points, 1,000 picks, lazy loop on a loaded 2-core machine: 1.6 s with 1 thread vs 41 s
    with 2). ``None`` keeps torch's setting; CUDA is unaffected.
    """
    if threads is None or device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def facility_location(
    features: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
    greedy: str = "auto",
    similarity: str = "exp",
    normalize_weights: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    epsilon: float = 0.01,
    lazy_batch: int = 16,
    dtype: torch.dtype = torch.float32,
    threads: int | None = 1,
    batch_bytes: int | None = None,
    knn: int | None = None,
    algorithm: str | None = None,
    engine: EngineSettings | None = None,
) -> Selection:
    """Per-class facility-location coreset with cluster-size weights.

    The optimiser and the engine can be given apart (:mod:`coreaug.select.settings`):
    ``algorithm`` (``exact``, ``lazy``, ``naive``, ``stochastic``) and ``engine=EngineSettings(...)``
    (step rule, memory budget, tiles, threads, dtype); they replace ``greedy`` and the engine keywords
    below, which stay for existing callers (giving both is an error).

    Args:
        features: ``(n, d)`` finite gradient proxies (e.g. :func:`coreaug.proxies.compute_proxies`).
        labels: ``(n,)`` integer classes; selection runs independently inside each class.
        budget_or_fraction: ``int`` total count, ``float`` fraction in ``(0, 1]``
            (``B = max(1, floor(f·n))``, see :func:`~coreaug.select.base.resolve_total_budget`), or a
            sequence of per-class counts (one per class, in class order).
        num_classes: if given, labels must lie in ``[0, num_classes)`` and every class must be
            non-empty; if ``None`` the classes are the labels present.
        per_class: ``"proportional"`` (default; exact total, ≥ 1 per class when B allows),
            ``"equal"`` (exact total, even split), ``"equal-ceil"`` (official ``ceil(B/C)``; the
            total may exceed B), or ``"none"`` (one pool). See :mod:`coreaug.select.budgets`.
        greedy: ``"auto"`` (default: the exact engine on ``device`` — ``"incremental"`` on CPU,
            compiled, ``"sweep"`` on CUDA, batched over classes — and the streamed exact greedy for
            classes over ``memory_budget``), ``"incremental"``, ``"sweep"``, or the per-class loops ``"lazy"``
            (the previous default, same picks up to ties), ``"naive"`` (reference, ``O(k n²)``) and
            ``"stochastic"`` (these three loop over classes in Python and sync every step).
        similarity: ``"exp"`` (default: ``exp(−‖g_i − g_j‖/d)``, official parity) or ``"maxdist"``
            (CRAIG: ``max dist − dist``). See :mod:`coreaug.select.similarity`.
        normalize_weights: rescale weights to mean 1 over the whole coreset (official code).
        seed: seeds stochastic greedy (lazy and naive are deterministic).
        device: where to compute (``None``: the features' device, so CUDA proxies stay on CUDA;
            ``"auto"`` picks CUDA if present). The result is always on the CPU.
        memory_budget: bytes a class's dense ``n_c × n_c`` similarity matrix may take
            (float32: ``4 n_c²``; default 1 GiB, i.e. up to 16,384 points per class). Larger classes
            recompute similarity rows on demand with ``O(chunk_bytes)`` temporaries instead
            (lazy/stochastic stay cheap; naive then costs ``O(k n² d)``).
        chunk_bytes, epsilon, lazy_batch: chunk size of streamed passes; stochastic-greedy ε;
            candidates re-evaluated per lazy round.
        dtype: compute dtype (float32 default; float64 for exactness tests).
        threads: CPU intra-op threads inside the tensor greedy loops (default 1, restored
            afterwards; see :func:`cpu_threads` for why); similarity building and the naive greedy
            keep torch's setting (they are large, threadable ops), and the compiled CPU greedy is
            single-threaded whatever this says. ``None``: never touch it.
        batch_bytes: engine only, off the compiled CPU path (which builds one class at a time) —
            classes of similar size are stacked while their padded ``(C, m, m)`` similarity tensor
            fits this many bytes (``None``: 256 MiB on CPU; on CUDA
            a quarter of the free GPU memory, at most 8 GiB; a single class may take up to
            ``memory_budget``). Larger → fewer, bigger tensor ops per step.
        knn: engine only — if set, replace the similarity by its sparse ``knn``-nearest-neighbour
            version (**approximate**; ``O(n·knn)`` memory, one streamed pass to build; weights and
            ``objective`` still use the exact similarity). See :mod:`coreaug.select.streamed`.

    Returns:
        :class:`Selection` with ``indices`` sorted ascending (positions into ``features``) and
        ``weights`` γ_j = number of points of j's class whose most similar selected element is j
        (ties → the element picked first). A selected element with an empty cluster (possible
        only with duplicate points) gets γ = 1, as in the official code, so Σγ = n unless that
        happens. ``info`` holds ``budgets``, ``classes``, ``objective`` (Σ over classes of F) and
        ``greedy_order`` (per-class picks, in pick order).

    Raises:
        SelectionError: NaN/Inf or non-2-D features, length mismatch, bad labels, a fraction
            outside (0, 1], a budget larger than n or than a class, an empty class, unknown options.

    Cost: per class, building similarities ``O(n_c² d)``; the default engine's incremental greedy
    one pass over the matrix for the first pick, then ``≈ 1 n_c²`` entries in all for the rest
    (measured at 10% budgets; ``O(Σ_t |D_t| · n_c)`` at worst, ``Σ_t |D_t| ≈ 4–5 n_c``) plus
    ``O(k_c n_c)`` per-step scans (sweep: ``O(k_c n_c²)``, on the GPU); lazy greedy ``O(E · n_c)``
    for ``E`` row evaluations (measured ≈ 50–100 per pick at k/n = 10%, ≈ 500 at k/n = 1%); naive
    ``O(k_c n_c²)``. Peak memory: on CPU one class's matrix (``4 m²`` bytes, ``m`` = ``n_c`` rounded
    up to 64) plus ``m²/16`` bytes of block maxima; elsewhere the dense batch (``batch_bytes``, or
    one large class); a class over ``memory_budget`` streams with ``O(n_c)``
    memory and ``≈ 5`` passes of ``O(n_c² d)``. Measured: ``benchmarks/results/select.md`` and
    ``select_large.md``.

    Device: the computation runs on ``device`` (default: where ``features`` are, so CUDA proxies
    stay on CUDA); the default engine then never syncs with the host inside a greedy step on CUDA
    (``"sweep"``; the streamed and kNN paths sync once per pick). The returned
    :class:`Selection` always holds CPU tensors. ``select("coreset", ..., device=torch.device("cuda"))``
    forwards ``device`` here.
    """
    if algorithm is not None or engine is not None:
        if greedy != "auto":
            raise SelectionError("pass either greedy= or algorithm=/engine=, not both")
        greedy = greedy_rule(algorithm or "exact", engine)
        if engine is not None:
            ek = engine.keywords()
            memory_budget, chunk_bytes, batch_bytes = ek["memory_budget"], ek["chunk_bytes"], ek["batch_bytes"]
            threads, dtype, lazy_batch = ek["threads"], ek["dtype"], ek["lazy_batch"]
    x = as_features(features)
    y = as_labels(labels, n=x.shape[0], num_classes=num_classes)
    if per_class not in PER_CLASS_MODES:
        raise SelectionError(f"unknown per_class mode {per_class!r}; choose one of: {', '.join(PER_CLASS_MODES)}")
    if greedy not in GREEDY_METHODS:
        raise SelectionError(f"unknown greedy method {greedy!r}; choose one of: {', '.join(GREEDY_METHODS)}")
    if similarity not in SIMILARITIES:
        raise SelectionError(f"unknown similarity {similarity!r}; choose one of: {', '.join(SIMILARITIES)}")
    dev = x.device if device is None else resolve_device(device)
    classes, members = classes_and_members(y, num_classes, per_class)
    budgets = _budgets(budget_or_fraction, members, classes, per_class, x.shape[0])
    x = x.to(device=dev, dtype=dtype)
    gen = torch.Generator().manual_seed(int(seed))
    picked, weights, orders, objectives = [], [], [], []
    if greedy in ENGINE_METHODS or knn is not None:
        with torch.no_grad():
            per_class_results = _engine_classes(
                x, members, budgets, greedy=greedy, similarity=similarity, knn=knn, memory_budget=memory_budget,
                batch_bytes=batch_bytes, chunk_bytes=chunk_bytes, threads=threads,
            )
    else:
        per_class_results = []
        for mem, k in zip(members, budgets):
            if k == 0:
                per_class_results.append(None)
                continue
            res = greedy_facility_location(
                x.index_select(0, mem.to(dev)), k, greedy=greedy, similarity=similarity, epsilon=epsilon,
                lazy_batch=lazy_batch, generator=gen, memory_budget=memory_budget, chunk_bytes=chunk_bytes,
                threads=threads,
            )
            per_class_results.append((res["order"], res["counts"], res["objective"]))
    for mem, res in zip(members, per_class_results):
        if res is None:
            orders.append([])
            objectives.append(0.0)
            continue
        order, counts, objective = res
        glob = mem[order]
        picked.append(glob)
        w = counts.to(torch.float32)
        weights.append(torch.where(w == 0, torch.ones_like(w), w))
        orders.append(glob.tolist())
        objectives.append(objective)
    idx = torch.cat(picked)
    w = torch.cat(weights)
    if normalize_weights:
        w = w * (w.numel() / w.sum())
    perm = torch.argsort(idx)
    info = {
        "method": "facility_location",
        "greedy": greedy,
        "similarity": similarity,
        "per_class": per_class,
        "classes": classes,
        "budgets": budgets,
        "objective": float(sum(objectives)),
        "class_objectives": objectives,
        "greedy_order": orders,
    }
    return Selection(indices=idx[perm].contiguous(), weights=w[perm].contiguous(), info=info)


def _engine_classes(
    x: torch.Tensor,
    members: list[torch.Tensor],
    budgets: list[int],
    *,
    greedy: str,
    similarity: str,
    knn: int | None,
    memory_budget: int,
    batch_bytes: int | None,
    chunk_bytes: int,
    threads: int | None,
) -> list[tuple[torch.Tensor, torch.Tensor, float] | None]:
    """Per class ``(order, counts, objective)`` (CPU tensors; ``None`` for a zero budget) from the
    batched dense engine, the streamed exact greedy (classes over ``memory_budget``) or kNN.

    ``x`` is already on the compute device; class members are CPU positions into it.
    """
    dev = x.device
    if knn is not None and (isinstance(knn, bool) or int(knn) < 1):
        raise SelectionError(f"knn must be a positive number of neighbours, got {knn!r}")
    if batch_bytes is None:
        batch_bytes = DEFAULT_BATCH_BYTES
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            batch_bytes = max(DEFAULT_BATCH_BYTES, min(8 << 30, free // 4))
    rule = default_step_rule(dev) if greedy == "auto" else greedy
    if rule not in ("incremental", "sweep"):
        rule = default_step_rule(dev)
    itemsize = torch.finfo(x.dtype).bits // 8
    out: list[tuple[torch.Tensor, torch.Tensor, float] | None] = [None] * len(members)
    todo = [c for c, k in enumerate(budgets) if k > 0]
    dense = [c for c in todo if knn is None and int(members[c].numel()) ** 2 * itemsize <= memory_budget]
    sizes = [int(members[c].numel()) for c in dense]
    if runs_compiled(rule, dev, x.dtype):
        # the compiled greedy runs class by class anyway: one class per batch keeps memory at one
        # class's matrix and each matrix warm in cache between its build and its greedy
        groups = [[i] for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))]
    else:
        groups = plan_batches(sizes, itemsize, batch_bytes)
    # one workspace for every batch: the largest (C, m, m) of the plan, page-faulted once
    need = max((len(g) * padded_size(max(sizes[i] for i in g)) ** 2 for g in groups), default=0)
    workspace = torch.empty(need, dtype=x.dtype, device=dev) if len(groups) > 1 else None
    for group in groups:
        cls = [dense[g] for g in group]
        feats = [x.index_select(0, members[c].to(dev)) for c in cls]
        # incremental rule: nearby points at nearby positions, so it can skip whole column blocks
        perms = [locality_order(f) for f in feats] if rule == "incremental" else None
        if perms is not None:
            feats = [f.index_select(0, p) for f, p in zip(feats, perms)]
        batch = build_batch(feats, similarity, workspace=workspace)
        ks = [budgets[c] for c in cls]
        tie_rank = None
        if perms is not None:  # ties between equal gains break by the original position
            m = batch.S.shape[1]
            tie_rank = torch.full((len(cls), m), m, dtype=torch.long, device=dev)
            for i, p in enumerate(perms):
                tie_rank[i, : p.numel()] = p
        with cpu_threads(threads, dev):
            order, assign, cur = greedy_batch(batch, ks, rule=rule, chunk_bytes=chunk_bytes, tie_rank=tie_rank)
        valid = batch.valid
        counts = counts_from_assign(assign, valid, order.shape[1])
        objs = torch.where(valid, cur, torch.zeros_like(cur)).double().sum(dim=1)
        del batch
        order, counts, objs = order.cpu(), counts.cpu(), objs.tolist()  # one transfer per batch
        for i, c in enumerate(cls):
            picks = order[i, : ks[i]].clone()
            if perms is not None:  # back to positions in the class's member list
                picks = perms[i].cpu().index_select(0, picks)
            out[c] = (picks, counts[i, : ks[i]].clone(), float(objs[i]))
    for c in todo:
        if out[c] is not None:
            continue
        xc = x.index_select(0, members[c].to(dev))
        k = budgets[c]
        with cpu_threads(threads, dev):
            if knn is not None:
                order, assign, cur, _ = knn_greedy(xc, k, int(knn), similarity)
            else:
                order, assign, cur = streamed_greedy(xc, k, similarity)
        counts = torch.bincount(assign, minlength=k)
        out[c] = (order.cpu(), counts.cpu(), float(cur.double().sum()))
    return out


def _budgets(budget_or_fraction: Any, members: list[torch.Tensor], classes: list[int], per_class: str, n: int) -> list[int]:
    sizes = [int(m.numel()) for m in members]
    total = resolve_total_budget(budget_or_fraction, n)
    if isinstance(total, list):
        return check_explicit_budgets(total, sizes, classes)
    return class_budgets(sizes, total, per_class)


def facility_location_objective(
    features: torch.Tensor,
    indices: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    similarity: str = "exp",
    dtype: torch.dtype = torch.float64,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> float:
    """``Σ_c F_c(S ∩ V_c)`` computed independently of the optimisers (float64, chunked).

    ``indices`` are positions into ``features``; with ``labels`` the objective is per class (each
    point is covered only by selected points of its own class; ``maxdist`` uses each class's own
    M), without them one pool. Used by tests and benchmarks to compare any selector's output.
    """
    x = as_features(features).to(dtype)
    sel = torch.as_tensor(indices, dtype=torch.long).to(x.device)
    y = torch.zeros(x.shape[0], dtype=torch.long) if labels is None else as_labels(labels, n=x.shape[0])
    total = 0.0
    for c in torch.unique(y).tolist():
        mem = (y == c).nonzero().flatten().to(x.device)
        s_c = sel[(y.to(x.device)[sel] == c)]
        if s_c.numel() == 0:
            continue
        pos = torch.searchsorted(mem, s_c)  # positions of the selected points inside the class
        kernel = SimilarityKernel(x.index_select(0, mem), similarity, chunk_bytes=chunk_bytes, force_dense=False)
        _, best = kernel.assign(pos)
        total += float(best.sum())
    return total
