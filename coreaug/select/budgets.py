"""Per-class budgets: how many points each class contributes to a subset of total size ``B``.

Modes (``per_class=``):

* ``"proportional"`` (default): quotas ``q_c = B · n_c / n``; every class gets ``floor(q_c)`` and the
  ``B − Σ floor(q_c)`` leftover units go to the largest fractional remainders (ties → lower class
  index), so the total is exactly ``B`` (Hamilton / largest-remainder apportionment). If ``B`` is at
  least the number of classes, every class then gets at least one point: a class rounded to 0
  takes one unit from the class with the largest surplus ``b_c − q_c`` among those with
  ``b_c ≥ 2``. Never exceeds a class size (``q_c ≤ n_c``).
* ``"equal"``: an exact, as-equal-as-possible split of ``B`` (water-filling): a class smaller than its
  share gives all its points and the shortfall is spread over the others; the ``B mod C`` extra
  units go to the lowest class indices with room. Total exactly ``B``.
* ``"equal-ceil"``: the official code's rule (``equal_num=True``): ``ceil(B / C)`` per class, a
  small class's shortfall spread over the rest (water-filling as above), so the total is
  ``min(n, C · ceil(B / C))`` and may exceed ``B`` by up to ``C − 1``.
* ``"none"``: no per-class split — one pool (handled by the caller).
"""

from __future__ import annotations

from typing import Sequence

from coreaug.errors import SelectionError

__all__ = ["PER_CLASS_MODES", "class_budgets", "check_explicit_budgets"]

PER_CLASS_MODES: tuple[str, ...] = ("proportional", "equal", "equal-ceil", "none")


def _water_fill(sizes: list[int], total: int) -> list[int]:
    """Split ``total`` as evenly as possible subject to ``b_c ≤ sizes[c]`` (requires total ≤ Σ sizes)."""
    budgets = [0] * len(sizes)
    remaining = total
    open_classes = [c for c, s in enumerate(sizes) if s > 0]
    while remaining > 0 and open_classes:
        share, extra = divmod(remaining, len(open_classes))
        if share == 0:  # fewer units than open classes: one each to the lowest indices
            for c in open_classes[:extra]:
                budgets[c] += 1
            break
        still_open = []
        for c in open_classes:
            take = min(share, sizes[c] - budgets[c])
            budgets[c] += take
            remaining -= take
            if budgets[c] < sizes[c]:
                still_open.append(c)
        open_classes = still_open
    return budgets


def class_budgets(sizes: Sequence[int], total: int, mode: str = "proportional") -> list[int]:
    """Budgets per class for class sizes ``sizes`` and total ``total`` (see the module docstring).

    Raises:
        SelectionError: unknown ``mode`` or ``total`` outside ``[1, Σ sizes]``.
    """
    sizes = [int(s) for s in sizes]
    n = sum(sizes)
    if mode not in PER_CLASS_MODES:
        raise SelectionError(f"unknown per_class mode {mode!r}; choose one of: {', '.join(PER_CLASS_MODES)}")
    if not 1 <= total <= n:
        raise SelectionError(f"budget {total} must be between 1 and the number of points ({n})")
    if mode == "none":
        return [total]
    if mode == "equal":
        return _water_fill(sizes, total)
    if mode == "equal-ceil":
        nonempty = sum(1 for s in sizes if s > 0)
        per = -(-total // nonempty)
        return _water_fill(sizes, min(n, per * nonempty))
    # proportional: largest-remainder apportionment, exact integer arithmetic (B·n_c = q·n + r).
    floors = [(total * s) // n for s in sizes]
    rems = [(total * s) % n for s in sizes]
    leftover = total - sum(floors)
    order = sorted(range(len(sizes)), key=lambda c: (-rems[c], c))
    budgets = floors[:]
    for c in order[:leftover]:
        budgets[c] += 1
    nonempty = [c for c, s in enumerate(sizes) if s > 0]
    if total >= len(nonempty):
        for c in nonempty:
            if budgets[c] == 0:
                # surplus b_d − q_d = (b_d·n − total·n_d)/n; compare numerators (exact).
                donors = [d for d in range(len(sizes)) if budgets[d] >= 2]
                donor = max(donors, key=lambda d: (budgets[d] * n - total * sizes[d], -d))
                budgets[donor] -= 1
                budgets[c] = 1
    return budgets


def check_explicit_budgets(budgets: Sequence[int], sizes: Sequence[int], classes: Sequence[int]) -> list[int]:
    """Validate explicit per-class budgets against class sizes."""
    budgets = [int(b) for b in budgets]
    if len(budgets) != len(sizes):
        raise SelectionError(f"got {len(budgets)} per-class budgets for {len(sizes)} classes")
    for b, s, c in zip(budgets, sizes, classes):
        if b > s:
            raise SelectionError(f"budget {b} for class {c} is larger than the class ({s} points)")
    return budgets

