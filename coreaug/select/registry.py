"""The selector registry: every selector by name, with what it needs from the proxy pass.

Each :class:`SelectorSpec` names a selector function, its aliases, a one-line description, the
inputs it **needs** and whether it returns weights. The needs are the vocabulary of
:func:`coreaug.proxies.compute_proxies` (``needs=``) so one pass computes the union:

==============  ====================================================================================
``probs``       softmax probabilities ``p`` (``Proxies.probs``)
``losses``      per-example cross-entropy of the un-augmented example (``Proxies.losses``)
``grad_proxy``  last-layer gradient proxy: bias ``p − e_y`` or the weight proxy (``Proxies.features``)
``embedding``   penultimate embedding ``h``, the input of the last linear layer (``Proxies.embeddings``)
``grad_norm``   per-example gradient norm, last-layer closed form ``‖p − e_y‖·√(‖h‖²+1)`` (``Proxies.grad_norms``)
``history``     training history: a :class:`~coreaug.select.forgetting.ForgettingTracker`
==============  ====================================================================================

A selector function takes its inputs positionally in the order of ``SelectorSpec.inputs``, then
``labels`` and ``budget_or_fraction``, then keywords (``num_classes``, ``per_class``, ``seed`` where
it is stochastic, and its own options).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from coreaug.errors import ConfigError
from coreaug.select.baselines import max_loss_subset, random_subset
from coreaug.select.craig_pb import craig_pb_subset
from coreaug.select.facility_location import facility_location
from coreaug.select.forgetting import forgetting_subset
from coreaug.select.gradmatch import gradmatch_subset
from coreaug.select.graph_cut import graph_cut_subset
from coreaug.select.herding import herding_subset
from coreaug.select.kcenter import kcenter_subset
from coreaug.select.scores import el2n_subset, grand_subset
from coreaug.select.uncertainty import entropy_subset, least_confidence_subset, margin_subset

__all__ = ["NEEDS", "NEED_ARGS", "SelectorSpec", "REGISTRY", "SELECTOR_NAMES", "get_selector", "resolve_selector",
           "needs_of", "describe_selectors"]

#: Every need a selector may declare, in the order the proxy pass lists them.
NEEDS: tuple[str, ...] = ("probs", "losses", "grad_proxy", "embedding", "grad_norm", "history")
#: The keyword of :func:`coreaug.select.select` (and the ``Proxies`` attribute) that carries each need.
NEED_ARGS: dict[str, str] = {
    "probs": "probs", "losses": "losses", "grad_proxy": "features", "embedding": "embeddings",
    "grad_norm": "grad_norms", "history": "history",
}


@dataclass(frozen=True)
class SelectorSpec:
    """One registered selector.

    Attributes:
        name: canonical name.
        func: the selector function (see the module docstring for its calling convention).
        inputs: the needs passed positionally before ``labels``, in order (a subset of :data:`NEEDS`).
        weighted: whether its weights carry information (else all ones).
        description: one line for ``coreaug info``.
        aliases: other accepted names.
        reference: the paper it follows.
    """

    name: str
    func: Callable
    inputs: tuple[str, ...]
    weighted: bool
    description: str
    aliases: tuple[str, ...] = ()
    reference: str = ""

    @property
    def needs(self) -> frozenset[str]:
        return frozenset(self.inputs)


_SPECS: tuple[SelectorSpec, ...] = (
    SelectorSpec("coreset", facility_location, ("grad_proxy",), True,
                 "per-class facility location on gradient proxies, weights = cluster sizes (CRAIG; the paper's)",
                 ("facility_location", "facility-location", "craig"), "Mirzasoleiman et al. 2020"),
    SelectorSpec("random", random_subset, (), False, "uniform random subset per class",
                 (), ""),
    SelectorSpec("maxloss", max_loss_subset, ("losses",), False, "highest per-example loss per class",
                 ("max_loss", "max-loss"), ""),
    SelectorSpec("least_confidence", least_confidence_subset, ("probs",), False,
                 "least confidence 1 - max p: most uncertain per class",
                 ("least-confidence", "leastconf", "confidence"), "Coleman et al. 2020"),
    SelectorSpec("entropy", entropy_subset, ("probs",), False, "highest predictive entropy per class",
                 (), "Coleman et al. 2020"),
    SelectorSpec("margin", margin_subset, ("probs",), False, "smallest top-1 minus top-2 probability margin per class",
                 (), "Coleman et al. 2020"),
    SelectorSpec("el2n", el2n_subset, ("probs",), False, "highest EL2N score ||softmax - onehot|| per class",
                 (), "Paul et al. 2021"),
    SelectorSpec("grand", grand_subset, ("grad_norm",), False,
                 "highest GraNd score, last-layer gradient norm ||p - e_y|| sqrt(||h||^2+1), per class",
                 (), "Paul et al. 2021"),
    SelectorSpec("forgetting", forgetting_subset, ("history",), False,
                 "most forgetting events during training, never-learned first (epoch 0: seeded random)",
                 ("forgetting_events", "forgetting-events"), "Toneva et al. 2019"),
    SelectorSpec("kcenter", kcenter_subset, ("embedding",), False,
                 "k-center greedy (farthest-first) on penultimate embeddings per class",
                 ("k-center", "kcenter_greedy", "k-center-greedy", "kcentergreedy"), "Sener & Savarese 2018"),
    SelectorSpec("herding", herding_subset, ("embedding",), False,
                 "herding: running mean of picks tracks the class mean of embeddings",
                 (), "Welling 2009; Chen et al. 2010"),
    SelectorSpec("graph_cut", graph_cut_subset, ("grad_proxy",), False,
                 "submodular graph-cut greedy on gradient proxies per class (lambda = 0.5)",
                 ("graph-cut", "graphcut"), "Iyer & Bilmes 2013"),
    SelectorSpec("gradmatch", gradmatch_subset, ("grad_proxy",), True,
                 "GradMatch: non-negative OMP matching the class gradient sum, weights from NNLS",
                 ("grad-match", "grad_match"), "Killamsetty et al. 2021"),
    SelectorSpec("craig_pb", craig_pb_subset, ("grad_proxy",), True,
                 "CRAIG per mini-batch: facility location over mini-batch gradient averages",
                 ("craig-pb", "craigpb"), "Mirzasoleiman et al. 2020"),
)

REGISTRY: dict[str, SelectorSpec] = {s.name: s for s in _SPECS}
SELECTOR_NAMES: tuple[str, ...] = tuple(REGISTRY)
_ALIASES: dict[str, str] = {**{s.name: s.name for s in _SPECS}, **{a: s.name for s in _SPECS for a in s.aliases}}


def resolve_selector(name: str) -> str:
    """The canonical name of ``name`` (case-insensitive; ``-``/``_`` variants as registered).

    Raises :class:`ConfigError` with the list of names for an unknown one.
    """
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise ConfigError(f"unknown selection method {name!r}; choose one of: {', '.join(SELECTOR_NAMES)}")
    return key


def get_selector(name: str) -> SelectorSpec:
    """The :class:`SelectorSpec` of ``name`` or an alias (``ConfigError`` if unknown)."""
    return REGISTRY[resolve_selector(name)]


def needs_of(*names: str) -> frozenset[str]:
    """The union of the needs of the named selectors."""
    out: set[str] = set()
    for n in names:
        out |= get_selector(n).needs
    return frozenset(out)


def describe_selectors() -> list[str]:
    """One line per selector: ``name  needs  [weighted]  description``."""
    width = max(len(n) for n in SELECTOR_NAMES)
    lines = []
    for s in _SPECS:
        needs = ", ".join(s.inputs) or "-"
        tag = " [weighted]" if s.weighted else ""
        lines.append(f"{s.name:<{width}}  needs: {needs:<12}{tag:<11} {s.description}")
    return lines
