"""Subset selection: per-class facility-location coresets (weighted) and the selectors of the field.

Every selector maps ``(inputs, labels, budget or fraction, …)`` to a :class:`Selection` (sorted
positions + one weight each). :mod:`coreaug.select.registry` lists them with what they need from the
proxy pass; :func:`select` dispatches by name.
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
from coreaug.select.forgetting import ForgettingTracker
from coreaug.select.settings import ALGORITHMS, EngineSettings, GreedyResult
from coreaug.select.registry import (
    NEED_ARGS,
    NEEDS,
    REGISTRY,
    SELECTOR_NAMES,
    SelectorSpec,
    describe_selectors,
    get_selector,
    needs_of,
    resolve_selector,
)
from coreaug.select.similarity import SIMILARITIES, SimilarityKernel

__all__ = [
    "ALGORITHMS",
    "EngineSettings",
    "GreedyResult",
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
    "NEEDS",
    "REGISTRY",
    "SelectorSpec",
    "ForgettingTracker",
    "get_selector",
    "needs_of",
    "describe_selectors",
]

SELECTION_METHODS: tuple[str, ...] = SELECTOR_NAMES

# what a missing input is called in the error message
_NEED_TEXT: dict[str, str] = {
    "grad_proxy": "features (gradient proxies)", "losses": "per-example losses", "probs": "probs (softmax probabilities)",
    "embedding": "embeddings (penultimate features)", "grad_norm": "grad_norms (per-example gradient norms)",
    "history": "history (a ForgettingTracker of the training run)",
}


def resolve_method(method: str) -> str:
    """The canonical selector name (see :data:`SELECTION_METHODS`) of ``method`` or an alias."""
    return resolve_selector(method)


def select(
    method: str,
    *,
    labels: torch.Tensor,
    fraction: int | float | Any,
    features: torch.Tensor | None = None,
    losses: torch.Tensor | None = None,
    seed: int = 0,
    probs: torch.Tensor | None = None,
    embeddings: torch.Tensor | None = None,
    grad_norms: torch.Tensor | None = None,
    history: Any = None,
    **kw: Any,
) -> Selection:
    """Dispatch to a registered selector by name (:mod:`coreaug.select.registry`).

    ``method``: a name or alias from :data:`SELECTION_METHODS`, e.g. ``"coreset"`` (aliases
    ``"facility_location"``, ``"craig"``; needs ``features``), ``"random"``, ``"maxloss"`` (needs
    ``losses``), ``"entropy"`` (needs ``probs``), ``"kcenter"`` (needs ``embeddings``) …; each
    selector's needs map to the keywords ``features`` (grad_proxy), ``losses``, ``probs``,
    ``embeddings``, ``grad_norms`` and ``history``. ``fraction`` is passed as ``budget_or_fraction``
    (an int is an absolute count). ``seed`` goes to the selectors that take one. Extra keywords go
    to the selector (``per_class``, ``num_classes``, ``greedy``, ``similarity``, ``normalize_weights``,
    ``device`` …); a keyword the chosen selector does not take raises :class:`ConfigError`.

    Raises:
        ConfigError: unknown method name or option.
        SelectionError: a missing input the selector needs, or bad input (see the selectors).
    """
    spec = get_selector(method)
    given = {"features": features, "losses": losses, "probs": probs, "embeddings": embeddings,
             "grad_norms": grad_norms, "history": history}
    args = []
    for need in spec.inputs:
        value = given[NEED_ARGS[need]]
        if value is None:
            raise SelectionError(f"method {spec.name!r} needs {_NEED_TEXT[need]}")
        args.append(value)
    if "seed" in inspect.signature(spec.func).parameters:
        kw["seed"] = seed
    return _call(spec.func, *args, labels, fraction, **kw)


def _call(func: Any, *args: Any, **kw: Any) -> Selection:
    params = inspect.signature(func).parameters
    unknown = sorted(k for k in kw if k not in params)
    if unknown:
        raise ConfigError(f"{func.__name__} does not take option(s) {', '.join(unknown)}")
    return func(*args, **kw)
