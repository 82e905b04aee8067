"""Subset selection: per-class facility-location coresets (weighted), random and max-loss subsets.

Every selector maps ``(features/losses, labels, budget or fraction, …)`` to a :class:`Selection`
(sorted positions + one weight each). :func:`select` dispatches by method name.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from coreaug.errors import ConfigError, SelectionError
from coreaug.select.base import Selection
from coreaug.select.baselines import max_loss_subset, random_subset
from coreaug.select.budgets import PER_CLASS_MODES, class_budgets
from coreaug.select.facility_location import (
    GREEDY_METHODS,
    facility_location,
    facility_location_objective,
    greedy_facility_location,
)
from coreaug.select.similarity import SIMILARITIES, SimilarityKernel

__all__ = [
    "Selection",
    "SELECTION_METHODS",
    "GREEDY_METHODS",
    "PER_CLASS_MODES",
    "SIMILARITIES",
    "select",
    "resolve_method",
    "facility_location",
    "facility_location_objective",
    "greedy_facility_location",
    "random_subset",
    "max_loss_subset",
    "class_budgets",
    "SimilarityKernel",
]

# canonical name -> accepted aliases
_ALIASES: dict[str, str] = {
    "coreset": "coreset",
    "facility_location": "coreset",
    "facility-location": "coreset",
    "craig": "coreset",
    "random": "random",
    "maxloss": "maxloss",
    "max_loss": "maxloss",
    "max-loss": "maxloss",
}
SELECTION_METHODS: tuple[str, ...] = ("coreset", "random", "maxloss")


def resolve_method(method: str) -> str:
    """The canonical selector name (``coreset``, ``random`` or ``maxloss``) of ``method`` or an alias."""
    key = _ALIASES.get(str(method).lower())
    if key is None:
        raise ConfigError(f"unknown selection method {method!r}; choose one of: {', '.join(SELECTION_METHODS)}")
    return key


def select(
    method: str,
    *,
    labels: torch.Tensor,
    fraction: int | float | Any,
    features: torch.Tensor | None = None,
    losses: torch.Tensor | None = None,
    seed: int = 0,
    **kw: Any,
) -> Selection:
    """Dispatch to a selector by name.

    ``method``: ``"coreset"`` (aliases ``"facility_location"``, ``"craig"``) → :func:`facility_location`
    (needs ``features``); ``"random"`` → :func:`random_subset`; ``"maxloss"`` (``"max_loss"``) →
    :func:`max_loss_subset` (needs ``losses``). ``fraction`` is passed as ``budget_or_fraction``
    (an int is an absolute count). Extra keywords go to the selector (``per_class``, ``num_classes``,
    ``greedy``, ``similarity``, ``normalize_weights``, ``device`` …); a keyword the chosen selector
    does not take raises :class:`ConfigError`.

    Raises:
        ConfigError: unknown method name or option.
        SelectionError: missing features/losses, or bad input (see the selectors).
    """
    key = resolve_method(method)
    if key == "coreset":
        if features is None:
            raise SelectionError("method 'coreset' needs features (gradient proxies)")
        return _call(facility_location, features, labels, fraction, seed=seed, **kw)
    if key == "random":
        return _call(random_subset, labels, fraction, seed=seed, **kw)
    if losses is None:
        raise SelectionError("method 'maxloss' needs per-example losses")
    return _call(max_loss_subset, losses, labels, fraction, **kw)


def _call(func: Any, *args: Any, **kw: Any) -> Selection:
    params = inspect.signature(func).parameters
    unknown = sorted(k for k in kw if k not in params)
    if unknown:
        raise ConfigError(f"{func.__name__} does not take option(s) {', '.join(unknown)}")
    return func(*args, **kw)
