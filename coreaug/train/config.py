"""Training configuration: groups of fields in one TrainConfig, built from preset → config file → CLI overrides, validated.

Method names (what each epoch trains on; docs/paper-notes.md §4 "appending protocol" and "three regimes"):

=====================  ==========================================================================
``full``               all n examples, weak augmentation only (no strong augmentation)
``full-aug``           all n examples ∪ one strong-augmented copy of every example (|epoch| = 2n)
``full+aug-subset``    regime (a): all n originals ∪ strong-augmented copies of S
``subset-only``        regime (b): S (loss weights γ) ∪ strong-augmented copies of S
``random+aug-subset``  regime (c): a random subset of size |S| (weight 1) ∪ strong-augmented S
``subset``             baseline: S alone (weights γ), no strong augmentation
=====================  ==========================================================================

S is chosen by ``selector``: ``coreset`` (per-class facility location on gradient proxies, weights
γ = cluster sizes normalised to mean 1), ``random`` or ``maxloss`` (weights 1), re-selected every
``reselect_every`` (R) epochs starting at epoch 0 (docs/paper-notes.md §3, §5).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from coreaug.errors import ConfigError, first_line

# Choices read from the registries that own them (never copied here). Methods are the public API's regimes:
# SUBSET_METHODS train on a selected subset S (proxy pass + selector every R epochs), AUG_METHODS append
# strong-augmented copies, FULL_MAIN_METHODS have all n examples as main set (what dynamic pruning thins).
from coreaug.api.coreset import FULL_MAIN_REGIMES as FULL_MAIN_METHODS  # noqa: E402
from coreaug.api.coreset import REGIMES  # noqa: E402
from coreaug.api.coreset import STRONG_REGIMES as AUG_METHODS  # noqa: E402
from coreaug.api.coreset import SUBSET_REGIMES as SUBSET_METHODS  # noqa: E402
from coreaug.proxies import PROXY_KINDS as PROXIES  # noqa: E402
from coreaug.select.budgets import PER_CLASS_MODES as PER_CLASS  # noqa: E402
from coreaug.select.registry import SELECTOR_NAMES as SELECTORS  # noqa: E402 (``coreaug info`` lists their needs)

METHODS: tuple[str, ...] = tuple(REGIMES)

AUG_WEIGHTS: tuple[str, ...] = ("one", "gamma")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")  # adamw: decoupled weight decay; momentum/nesterov unused


def flag_choices(name: str) -> tuple[str, ...]:
    """The choices a field's flag names in its metadata (:func:`_flag`), from the owning registry."""
    if name == "pruning":
        from coreaug.api.pruning import PRUNING_METHODS

        return ("none", *PRUNING_METHODS)
    if name == "diagnostics_params":
        from coreaug.train.diagnostics import PARAM_MODES

        return PARAM_MODES
    return {"methods": METHODS, "selectors": SELECTORS, "proxies": PROXIES, "per_class": PER_CLASS,
            "aug_weights": AUG_WEIGHTS, "optimizers": OPTIMIZERS}[name]

# Fields that do not change what is computed; they are left out of the config hash so a run can be
# resumed on another device or with another number of loader workers.
_HASH_EXCLUDED = frozenset({"device", "num_workers", "threads", "eval_batch_size", "notes", "data_root",
                            "allow_nonfinite",
                            # diagnostics only observe the run (RNG-isolated; coreaug.train.diagnostics)
                            "diagnostics_every", "diagnostics_probe", "diagnostics_params"})
# Fields added after runs were first written: left out of the hash while they hold their default,
# so the checkpoints of those runs still resume.
_HASH_OMITTED_AT_DEFAULT: dict[str, Any] = {
    "proxy_pool": 1.0, "pruning": "none", "prune_ratio": 0.5, "prune_delta": 0.875, "prune_keep": 0.7,
    "prune_epsilon": 0.1, "prune_c": 1.0, "prune_window": 5,
}
#: Largest accepted ``threads`` (torch crashes on absurd counts such as 100000).
MAX_THREADS = 1024


def _flag(help: str, *, kind: str | None = None, metavar: str | None = None, choices: str | None = None,
          sweep: bool = False) -> dict[str, Any]:
    """Field metadata from which ``coreaug train`` (and, with ``sweep=True``, ``coreaug sweep``) generate the
    field's ``--flag`` (:func:`coreaug.commands._args.add_config_flags`), in the ``--help`` section of the
    field's group: its help, ``kind`` (``float``, ``int``, ``int_list``, ``int_or_auto``, ``switch``; default: a
    string), ``metavar`` and ``choices`` (a name :func:`flag_choices` reads from a registry when the parser is
    built)."""
    return {"flag": {"help": help, "kind": kind, "metavar": metavar, "choices": choices, "sweep": sweep}}


# ---------------------------------------------------------------------------------------------------- groups
# Every field name is unique across the groups: it is the field's flat name, i.e. its YAML/JSON key, its
# ``--flag`` (underscores as dashes), its key in config.json and an attribute of TrainConfig (cfg.lr is
# cfg.optimisation.lr). A YAML/JSON config may also give a group as a section: ``optimisation: {lr: 0.1}``.


@dataclass
class DataConfig:
    """What is trained and tested on."""

    dataset: str = field(default="digits", metadata=_flag("dataset name (see `coreaug info`)", sweep=True))
    data_root: str | None = field(default=None, metadata=_flag("dataset folder (every dataset but digits)", sweep=True))
    label_noise: float = field(default=0.0, metadata=_flag(
        "symmetric label-noise rate on training labels", kind="float", metavar="RATE", sweep=True))
    # extra keyword options of the dataset loader, e.g. {"train_per_class": 60, "seed": 0} for
    # caltech256 or {"use_extra": true} for svhn (set in a config file)
    data_options: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None  # None: the dataset's native size (image-folder datasets only)
    resize: int | None = None  # test-time resize of the shorter side (ImageFolder data)


@dataclass
class ModelConfig:
    """The network (``TrainConfig.network``: ``cfg.model`` is its name)."""

    model: str = field(default="cnn", metadata=_flag(
        "model name (see `coreaug info`), or timm:<name> / torchvision:<name>", sweep=True))
    weights: str | None = field(default=None, metadata=_flag(
        "local state dict to fine-tune from (resnet18/50, timm:NAME, torchvision:NAME)"))


@dataclass
class SelectionConfig:
    """What each epoch trains on: the regime, and how its subset S is selected."""

    method: str = field(default="subset-only", metadata=_flag("training regime: one of {methods}"))
    selector: str = field(default="coreset", metadata=_flag("subset selector: {selectors}"))
    # subset size |S| = int(fraction · n)  (docs/paper-notes.md §3: B = int(s·n))
    fraction: float = field(default=0.3, metadata=_flag("subset fraction s in (0, 1]", kind="float"))
    # R: recompute proxies and re-select every R epochs, from epoch 0
    reselect_every: int = field(default=1, metadata=_flag("R: re-select the subset every R epochs", kind="int",
                                                          sweep=True))
    # F in (0, 1]: each reselection runs the proxy pass on a fresh stratified random pool of F·n
    # points and selects from it (1 = all n, the paper's protocol; see coreaug.api.selection)
    proxy_pool: float = field(default=1.0, metadata=_flag(
        "proxy pass on a fresh stratified random pool of F·n points per reselection (0 < F <= 1; default 1 = all "
        "n, the paper's protocol)", kind="float", metavar="F"))
    # "bias": softmax(z) − onehot(y); "weight": (p − e_y) ⊗ h  (docs/paper-notes.md §3.2)
    proxy: str = field(default="bias", metadata=_flag("gradient proxy for the coreset", choices="proxies", sweep=True))
    # per-class budgets (docs/paper-notes.md §3.3): "equal-ceil" = ceil(B/C) per class (official default; the
    # total may slightly exceed B), "equal", "proportional" (official --no_equal_num), "none" (one pool)
    per_class: str = field(default="equal-ceil", metadata=_flag("per-class budget mode", choices="per_class",
                                                                 sweep=True))

    @property
    def uses_subset(self) -> bool:
        """Whether the method trains on a selected subset S (proxy pass and selector every R epochs)."""
        return self.method in SUBSET_METHODS

    @property
    def uses_strong_aug(self) -> bool:
        """Whether the method appends strong-augmented copies."""
        return self.method in AUG_METHODS


@dataclass
class PruningConfig:
    """Dynamic pruning of a full-data main set (coreaug.api.pruning)."""

    pruning: str = field(default="none", metadata=_flag(
        "{pruning} (InfoBatch: Qin et al. 2024; ucb, epsilon-greedy: Raju et al. 2021)", sweep=True))
    prune_ratio: float = field(default=0.5, metadata=_flag(
        "InfoBatch: drop below-mean-loss examples with probability R in [0, 1)",
        kind="float", metavar="R", sweep=True))
    prune_delta: float = field(default=0.875, metadata=_flag(
        "InfoBatch: prune in the first D share of the epochs, then train on all",
        kind="float", metavar="D", sweep=True))
    prune_keep: float = field(default=0.7, metadata=_flag("UCB/epsilon-greedy: share kept per epoch",
                                                          kind="float", metavar="K", sweep=True))
    prune_epsilon: float = field(default=0.1, metadata=_flag(
        "epsilon-greedy: share of the kept set drawn at random", kind="float", metavar="E", sweep=True))
    prune_c: float = field(default=1.0, metadata=_flag("UCB/epsilon-greedy: score = mean + C*std",
                                                       kind="float", metavar="C", sweep=True))
    prune_window: int = field(default=5, metadata=_flag("UCB/epsilon-greedy: recent losses kept",
                                                        kind="int", metavar="W", sweep=True))


@dataclass
class AugmentationConfig:
    """Weak (in-place) augmentation, and the strong-augmented copies the regimes append."""

    weak_aug: str = field(default="none", metadata=_flag("weak (in-place) augmentation", sweep=True))
    strong_aug: str = field(default="randaugment", metadata=_flag("strong augmentation of the appended copies",
                                                                  sweep=True))
    aug_policy: str = field(default="imagenet", metadata=_flag("AutoAugment policy: imagenet|cifar10|svhn"))
    # weight of the appended strong copies: 1 (default) or γ (docs/paper-notes.md §3.6)
    aug_weight: str = field(default="one", metadata=_flag("loss weight of the appended strong copies",
                                                          choices="aug_weights"))
    noise_eps: float = 0.5  # radius of the additive-noise augmentations


@dataclass
class OptimisationConfig:
    """Optimiser and schedule (docs/paper-notes.md §4 hyper-parameters)."""

    optimizer: str = field(default="sgd", metadata=_flag(
        "sgd (momentum, the paper's; default) or adamw (decoupled weight decay)", choices="optimizers"))
    epochs: int = field(default=10, metadata=_flag("", kind="int", sweep=True))
    lr: float = field(default=0.1, metadata=_flag("", kind="float", sweep=True))
    momentum: float = field(default=0.9, metadata=_flag("", kind="float"))
    weight_decay: float = field(default=1e-4, metadata=_flag("", kind="float"))
    nesterov: bool = False
    batch_size: int = field(default=128, metadata=_flag("", kind="int", sweep=True))
    milestones: list[int] = field(default_factory=list, metadata=_flag(
        "comma-separated MultiStepLR epochs, e.g. 100,150", kind="int_list", sweep=True))
    lr_gamma: float = 0.1


@dataclass
class ExecutionConfig:
    """Seed, device, precision, loader workers and threads: how the run executes."""

    seed: int = field(default=0, metadata=_flag("", kind="int"))
    device: str = field(default="auto", metadata=_flag("auto|cpu|cuda|cuda:N",
                                                       sweep=True))
    amp: bool = field(default=False, metadata=_flag("mixed precision on CUDA (ignored on CPU)", kind="switch"))
    # DataLoader workers: "auto" = 0 on CPU, min(8, available cores) on CUDA (pinned, persistent)
    num_workers: int | str = field(default="auto", metadata=_flag(
        "DataLoader worker processes (default auto: 0 on CPU, min(8, cores) on CUDA)",
        kind="int_or_auto", metavar="N|auto", sweep=True))
    # torch intra-op CPU threads during the run (None: the cores this process may use, divided among
    # torchrun's local processes, unless OMP_NUM_THREADS is set; see coreaug.device.default_threads)
    threads: int | None = field(default=None, metadata=_flag(
        "torch intra-op CPU threads (default: the cores this process may use; on a shared machine pass e.g. "
        "--threads 1)", kind="int", sweep=True))
    # inference batch of the proxy pass and evaluation: "auto" = 64 on CPU, 1024 on CUDA
    eval_batch_size: int | str = field(default="auto", metadata=_flag(
        "inference batch of the proxy pass and evaluation (default auto: 64 on CPU, 1024 on CUDA)",
        kind="int_or_auto", metavar="N|auto"))
    # keep training when the training loss becomes NaN/inf (default: stop with an error, keeping the
    # last good checkpoint); for studying divergence. Non-finite numbers are written as null in JSON.
    allow_nonfinite: bool = field(default=False, metadata=_flag(
        "keep training when the loss becomes NaN/inf (default: stop with an error)", kind="switch"))
    notes: str = ""


@dataclass
class DiagnosticsConfig:
    """Spectral diagnostics during training (coreaug.train.diagnostics)."""

    # every K epochs (0 = off) on a probe of N stratified training examples, Jacobian w.r.t. the
    # classifier ("last") or "all" parameters
    diagnostics_every: int = field(default=0, metadata=_flag(
        "Jacobian spectrum, shift and alignment error on a probe set at epoch 0 and every K epochs (0 = off)", kind="int", metavar="K"))
    diagnostics_probe: int = field(default=256, metadata=_flag(
        "probe size (stratified training examples)", kind="int", metavar="N"))
    diagnostics_params: str = field(default="last", metadata=_flag(
        "Jacobian w.r.t. the classifier (last, default: cheap) or all parameters", choices="diagnostics_params"))


#: The groups of :class:`TrainConfig`: attribute (= YAML section) name → dataclass, in ``--help`` order.
GROUPS: dict[str, type] = {
    "data": DataConfig, "network": ModelConfig, "selection": SelectionConfig, "dynamic_pruning": PruningConfig,
    "augmentation": AugmentationConfig, "optimisation": OptimisationConfig, "execution": ExecutionConfig,
    "diagnostics": DiagnosticsConfig,
}
#: The ``--help`` section title of each group.
GROUP_TITLES: dict[str, str] = {
    "data": "data", "network": "model", "selection": "selection (what each epoch trains on)",
    "dynamic_pruning": "dynamic pruning of the full-data main set (methods full, full-aug, full+aug-subset)",
    "augmentation": "augmentation", "optimisation": "optimisation", "execution": "execution",
    "diagnostics": "spectral diagnostics (RUN_DIR/diagnostics.csv; see docs/diagnostics.md)",
}


def config_fields() -> tuple[dataclasses.Field, ...]:
    """Every configuration field (the groups' fields, group by group): what config.json, YAML and the flags name."""
    return tuple(f for cls in GROUPS.values() for f in dataclasses.fields(cls))


#: Field name → the group that holds it.
FIELD_GROUP: dict[str, str] = {f.name: group for group, cls in GROUPS.items() for f in dataclasses.fields(cls)}
FIELD_NAMES: frozenset[str] = frozenset(FIELD_GROUP)
#: Numeric fields (``milestones`` holds numbers): a string in scientific notation (``"1e-3"``, which YAML 1.1
#: and so PyYAML read as a string) is taken as that number (:func:`numeric_value`); other strings are rejected.
#: Derived from the fields' types, so a new numeric field is one of them.
NUMERIC_FIELDS: frozenset[str] = frozenset(f.name for f in config_fields() if re.search(r"\b(int|float)\b", f.type))


@dataclass(init=False)
class TrainConfig:
    """Everything that defines one training run: eight groups of fields (:data:`GROUPS`), written resolved and
    flat to ``config.json``.

    ``TrainConfig(lr=0.05, fraction=0.1)`` sets fields by their flat names; ``TrainConfig(optimisation=
    OptimisationConfig(lr=0.05))`` sets whole groups (copied), and both may be mixed (flat names win). Every field
    reads and writes by its flat name too: ``cfg.lr is cfg.optimisation.lr``.

    A new field is one line in its group, with its metadata (:func:`_flag`, which generates its ``--flag``) and
    its check in its group's function of :data:`GROUP_CHECKS`; its YAML key is its name."""

    data: DataConfig = field(default_factory=DataConfig)
    network: ModelConfig = field(default_factory=ModelConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    dynamic_pruning: PruningConfig = field(default_factory=PruningConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    optimisation: OptimisationConfig = field(default_factory=OptimisationConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)

    def __init__(self, **values: Any) -> None:
        for group, cls in GROUPS.items():
            given = values.pop(group, None)
            if given is not None and not isinstance(given, cls):
                raise TypeError(f"TrainConfig({group}=...) takes a {cls.__name__}, got {type(given).__name__}")
            # a copy: dataclasses.replace passes the original's groups, which must stay unchanged
            setattr(self, group, cls() if given is None else copy.deepcopy(given))
        unknown = sorted(set(values) - FIELD_NAMES)
        if unknown:
            raise TypeError(f"TrainConfig got unknown field(s) {', '.join(map(repr, unknown))}")
        for name, value in values.items():
            setattr(self, name, value)

    def __copy__(self) -> "TrainConfig":
        # the groups are copied too: a copy's cfg.lr = … must not change the original
        return TrainConfig(**{group: copy.copy(getattr(self, group)) for group in GROUPS})

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable flat dictionary of every field (what ``config.json`` holds)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in config_fields()}

    def to_sections(self) -> dict[str, dict[str, Any]]:
        """The fields by group (``{"data": {"dataset": ...}, ...}``): a YAML config file's sectioned form."""
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """A short stable hash of the fields that determine the result (checked on ``--resume``)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _HASH_EXCLUDED
             and not (k in _HASH_OMITTED_AT_DEFAULT and v == _HASH_OMITTED_AT_DEFAULT[k])}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def uses_subset(self) -> bool:
        """:attr:`SelectionConfig.uses_subset`."""
        return self.selection.uses_subset

    @property
    def uses_strong_aug(self) -> bool:
        """:attr:`SelectionConfig.uses_strong_aug`."""
        return self.selection.uses_strong_aug


def _flat_property(group: str, name: str) -> property:
    """``cfg.<name>``, read and written in ``cfg.<group>``."""

    def get(self: TrainConfig) -> Any:
        return getattr(getattr(self, group), name)

    def set_(self: TrainConfig, value: Any) -> None:
        setattr(getattr(self, group), name, value)

    return property(get, set_, doc=f"``{group}.{name}``")


for _name, _group in FIELD_GROUP.items():
    setattr(TrainConfig, _name, _flat_property(_group, _name))
del _name, _group


def flat_values(values: Any, source: str) -> dict[str, Any]:
    """A mapping of config keys (flat names, or group sections such as ``optimisation: {lr: 0.1}``) → flat
    ``{name: value}``; a one-line :class:`ConfigError` naming ``source`` for anything else."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source} must be a mapping of config keys to values, got {type(values).__name__}")
    out: dict[str, Any] = {}
    unknown = []
    for key, value in values.items():
        if key in GROUPS:
            value = {} if value is None else value  # an empty section in YAML
            if not isinstance(value, Mapping):
                raise ConfigError(f"section {key!r} in {source} must be a mapping of its keys to values, got "
                                  f"{type(value).__name__}")
            stray = sorted(map(str, (k for k in value if FIELD_GROUP.get(k) != key)))
            misplaced = [f"{k!r} belongs to section {FIELD_GROUP[k]!r}" for k in stray if k in FIELD_GROUP]
            if misplaced:
                raise ConfigError(f"{'; '.join(misplaced)}, not to {key!r} (in {source})")
            if stray:
                raise ConfigError(f"unknown key(s) {', '.join(map(repr, stray))} in section {key!r} of {source}"
                                  f"; its keys: {', '.join(f.name for f in dataclasses.fields(GROUPS[key]))}")
            pairs = list(value.items())
        elif key in FIELD_NAMES:
            pairs = [(key, value)]
        else:
            unknown.append(key)
            continue
        for name, v in pairs:
            if isinstance(v, Mapping) and name != "data_options":  # only data_options holds a mapping
                hint = " (the model's own section is 'network')" if name == "model" else ""
                raise ConfigError(f"config key {name!r} in {source} takes a value, not a mapping{hint}")
            if name in out:
                raise ConfigError(f"config key {name!r} is given twice in {source} (flat and in its section)")
            out[name] = v
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(map(repr, sorted(map(str, unknown))))} in {source}")
    return out


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def _dataset_takes(dataset: str, option: str) -> bool:
    """True when the loader of ``dataset`` (a known name) accepts keyword ``option``."""
    import importlib
    import inspect

    from coreaug.data import DATASETS

    module_name, func_name = DATASETS[str(dataset).lower()].split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    return option in inspect.signature(loader).parameters


def _number(name: str, value: Any, *, integer: bool = False) -> float:
    """``value`` as a finite float (an integer when ``integer``), else a one-line ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


def _canonical_selector(cfg: TrainConfig) -> TrainConfig:
    """``cfg``, or a copy whose selector alias (e.g. ``"k-center"``) is replaced by its registry name."""
    if cfg.selector in SELECTORS:
        return cfg
    from coreaug.select.registry import resolve_selector

    try:
        return dataclasses.replace(cfg, selector=resolve_selector(str(cfg.selector)))
    except ConfigError:
        return cfg  # reported by _check_selection with the usual message


# ------------------------------------------------------------------------------ checks, one per group
# Each takes its group; a new field's check goes into its group's function. Messages name the field.


def _check_data(d: DataConfig) -> None:
    from coreaug.data import DATASETS

    _choice("dataset", str(d.dataset).lower(), tuple(DATASETS))
    if not 0.0 <= _number("label_noise", d.label_noise) < 1.0:
        raise ConfigError(f"label-noise rate must be in [0, 1), got {d.label_noise!r}")
    if not isinstance(d.data_options, dict) or not all(isinstance(k, str) for k in d.data_options):
        raise ConfigError(f"data_options must be a mapping of loader option names to values, got {d.data_options!r}")
    for name in ("image_size", "resize"):
        v = getattr(d, name)
        if v is not None and _number(name, v, integer=True) < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")


def _check_network(m: ModelConfig) -> None:
    from coreaug.models import check_model_name

    check_model_name(str(m.model).lower())  # built-in names, or timm:<name> / torchvision:<name>


def _check_selection(s: SelectionConfig) -> None:
    _choice("method", s.method, METHODS)
    _choice("selector", s.selector, SELECTORS)
    _choice("proxy", s.proxy, PROXIES)
    _choice("per-class budget", s.per_class, PER_CLASS)
    if not 0.0 < _number("fraction", s.fraction) <= 1.0:
        raise ConfigError(f"subset fraction must be in (0, 1], got {s.fraction!r}")
    if _number("reselect_every (R)", s.reselect_every, integer=True) < 1:
        raise ConfigError(f"reselection interval R must be an integer >= 1, got {s.reselect_every!r}")
    if not 0.0 < _number("proxy_pool", s.proxy_pool) <= 1.0:
        raise ConfigError(f"proxy pool fraction must be in (0, 1], got {s.proxy_pool!r}")


def _check_pruning(p: PruningConfig) -> None:
    """Checked whatever ``pruning`` is, so a bad value in a config file is reported even before it is used
    (the ranges of :mod:`coreaug.api.pruning`)."""
    from coreaug.api.pruning import PRUNING_RANGES as R

    _choice("pruning", p.pruning, flag_choices("pruning"))
    if _number("prune_ratio", p.prune_ratio) not in R["prune_ratio"]:
        raise ConfigError(f"prune ratio must be in {R['prune_ratio']}, got {p.prune_ratio!r}")
    if _number("prune_delta", p.prune_delta) not in R["delta"]:
        raise ConfigError(f"prune delta (the share of epochs that prune) must be in {R['delta']}, got {p.prune_delta!r}")
    if _number("prune_keep", p.prune_keep) not in R["keep"]:
        raise ConfigError(f"prune keep share must be in {R['keep']}, got {p.prune_keep!r}")
    if _number("prune_epsilon", p.prune_epsilon) not in R["epsilon"]:
        raise ConfigError(f"prune epsilon must be in {R['epsilon']}, got {p.prune_epsilon!r}")
    if _number("prune_c", p.prune_c) not in R["c"]:
        raise ConfigError(f"prune c must be >= 0, got {p.prune_c!r}")
    if _number("prune_window", p.prune_window, integer=True) < 1:
        raise ConfigError(f"prune window must be an integer >= 1, got {p.prune_window!r}")


def _check_augmentation(a: AugmentationConfig) -> None:
    from coreaug.augment import AUTOAUGMENT_POLICIES, STRONG_AUGMENTATIONS, WEAK_AUGMENTATIONS

    _choice("aug weight", a.aug_weight, AUG_WEIGHTS)
    _choice("weak augmentation", a.weak_aug, WEAK_AUGMENTATIONS)
    _choice("strong augmentation", a.strong_aug, STRONG_AUGMENTATIONS)
    _choice("AutoAugment policy", a.aug_policy, tuple(AUTOAUGMENT_POLICIES))
    if _number("noise_eps", a.noise_eps) <= 0:
        raise ConfigError(f"noise_eps must be > 0, got {a.noise_eps!r}")


def _check_optimisation(o: OptimisationConfig) -> None:
    _choice("optimizer", o.optimizer, OPTIMIZERS)
    if _number("epochs", o.epochs, integer=True) < 1:
        raise ConfigError(f"epochs must be >= 1, got {o.epochs!r}")
    if _number("batch_size", o.batch_size, integer=True) < 1:
        raise ConfigError(f"batch size must be >= 1, got {o.batch_size!r}")
    if _number("lr", o.lr) <= 0:
        raise ConfigError(f"learning rate must be > 0, got {o.lr!r}")
    if not 0.0 <= _number("momentum", o.momentum) < 1.0:
        raise ConfigError(f"momentum must be in [0, 1), got {o.momentum!r}")
    if _number("weight_decay", o.weight_decay) < 0:
        raise ConfigError(f"weight decay must be >= 0, got {o.weight_decay!r}")
    if not 0.0 < _number("lr_gamma", o.lr_gamma) <= 1.0:
        raise ConfigError(f"lr_gamma must be in (0, 1], got {o.lr_gamma!r}")
    _checked_milestones(o)
    _check_switch(o, "nesterov")


def _checked_milestones(o: OptimisationConfig) -> list[int]:
    if not isinstance(o.milestones, (list, tuple)):
        raise ConfigError(f"milestones must be a list of epochs, got {o.milestones!r}")
    ms = [int(_number("milestone", m, integer=True)) for m in o.milestones]
    if ms != sorted(set(ms)) or any(m < 1 for m in ms):
        raise ConfigError(f"milestones must be increasing positive epochs, got {o.milestones!r}")
    return ms


def _check_execution(e: ExecutionConfig) -> None:
    seed = e.seed  # checked as an int: 2^63 - 1 is not exact as a float
    if (isinstance(seed, bool) or not isinstance(seed, (int, float))
            or (isinstance(seed, float) and not seed.is_integer()) or not 0 <= seed < 2**63):
        raise ConfigError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    if e.threads is not None and _number("threads", e.threads, integer=True) > MAX_THREADS:
        raise ConfigError(f"threads must be in [1, {MAX_THREADS}], got {e.threads!r}")
    if e.threads is not None and _number("threads", e.threads, integer=True) < 1:
        raise ConfigError(f"threads must be a positive integer, got {e.threads!r}")
    if e.eval_batch_size != "auto" and _number("eval_batch_size", e.eval_batch_size, integer=True) < 1:
        raise ConfigError(f"eval batch size must be 'auto' or >= 1, got {e.eval_batch_size!r}")
    if e.num_workers != "auto" and _number("num_workers", e.num_workers, integer=True) < 0:
        raise ConfigError(f"num_workers must be 'auto' or >= 0, got {e.num_workers!r}")
    _check_switch(e, "amp")
    _check_switch(e, "allow_nonfinite")


def _check_diagnostics(g: DiagnosticsConfig) -> None:
    if _number("diagnostics_every", g.diagnostics_every, integer=True) < 0:
        raise ConfigError(f"diagnostics interval K must be an integer >= 0 (0 = off), got {g.diagnostics_every!r}")
    if _number("diagnostics_probe", g.diagnostics_probe, integer=True) < 2:
        raise ConfigError(f"diagnostics probe size N must be an integer >= 2, got {g.diagnostics_probe!r}")
    _choice("diagnostics params", g.diagnostics_params, flag_choices("diagnostics_params"))


def _check_switch(group: Any, name: str) -> None:
    if not isinstance(getattr(group, name), bool):
        raise ConfigError(f"{name} must be true or false, got {getattr(group, name)!r}")


#: The check of each group, in :data:`GROUPS` order.
GROUP_CHECKS: dict[str, Any] = {
    "data": _check_data, "network": _check_network, "selection": _check_selection, "dynamic_pruning": _check_pruning,
    "augmentation": _check_augmentation, "optimisation": _check_optimisation, "execution": _check_execution,
    "diagnostics": _check_diagnostics,
}


def _check_across_groups(cfg: TrainConfig) -> None:
    """The rules that tie fields of two groups."""
    if cfg.uses_strong_aug and cfg.strong_aug == "none":
        raise ConfigError(f"method {cfg.method!r} appends strong-augmented copies; set --strong-aug to an augmentation")
    if cfg.pruning != "none" and cfg.method not in FULL_MAIN_METHODS:
        raise ConfigError(f"--pruning thins a full-data main set: use it with --method full, full-aug or "
                          f"full+aug-subset, not {cfg.method!r}")
    if cfg.image_size is not None and not _dataset_takes(cfg.dataset, "image_size"):
        raise ConfigError(f"image_size applies to image-folder datasets only; {cfg.dataset} has a fixed image size, "
                          "so remove image_size from the configuration")


def _check_groups(cfg: TrainConfig) -> None:
    """Every group's checks, then the rules across groups (one-line ConfigError on the first problem)."""
    for group, check in GROUP_CHECKS.items():
        check(getattr(cfg, group))
    _check_across_groups(cfg)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every field; raise :class:`ConfigError` with a one-line message on the first problem.

    ``cfg`` itself is never changed: the returned config is a copy with a selector alias (e.g.
    ``"k-center"``) replaced by its canonical registry name and the types normalised (YAML may give
    floats for ints)."""
    if is_validated(cfg):
        return cfg  # validated before and unchanged since: once is enough
    cfg = _canonical_selector(cfg)
    _check_groups(cfg)
    ms = _checked_milestones(cfg.optimisation)
    out = dataclasses.replace(
        cfg, dataset=str(cfg.dataset).lower(), model=str(cfg.model).lower(), reselect_every=int(cfg.reselect_every),
        epochs=int(cfg.epochs), batch_size=int(cfg.batch_size), seed=int(cfg.seed), proxy_pool=float(cfg.proxy_pool),
        eval_batch_size=cfg.eval_batch_size if cfg.eval_batch_size == "auto" else int(cfg.eval_batch_size),
        num_workers=cfg.num_workers if cfg.num_workers == "auto" else int(cfg.num_workers),
        fraction=float(cfg.fraction), lr=float(cfg.lr), label_noise=float(cfg.label_noise), milestones=ms,
        diagnostics_every=int(cfg.diagnostics_every), diagnostics_probe=int(cfg.diagnostics_probe))
    out._validated_as = dataclasses.asdict(out)  # not a field: not in config.json, the hash or equality
    return out


def is_validated(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` came out of :func:`validate` and no field changed since."""
    return getattr(cfg, "_validated_as", None) == dataclasses.asdict(cfg)


def numeric_value(value: Any) -> Any:
    """``value`` as a float when it is a string in scientific notation (``"5e-4"``, ``"1.0E3"``), else unchanged.

    PyYAML follows YAML 1.1, which reads such numbers as strings (it wants a dot and a signed exponent), so
    ``weight_decay: 5e-4`` or ``--set lr=1e-3`` arrived as text; YAML 1.2 and JSON read them as numbers, and so
    does this. Other strings (``"abc"``, ``"auto"``, a quoted ``"4"``) are returned as they are, for
    :func:`validate` to accept or reject.
    """
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value.strip().replace("_", ""))
    return value


#: A YAML 1.2 float with an exponent (the forms YAML 1.1 leaves as strings).
_SCIENTIFIC = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+")


def _apply(cfg: TrainConfig, values: Mapping[str, Any], source: str) -> None:
    """Set the fields ``values`` names (flat keys or group sections; see :func:`flat_values`) on ``cfg``."""
    for k, v in flat_values(values, source).items():
        if k == "milestones" and isinstance(v, (list, tuple)):
            v = [numeric_value(m) for m in v]
        elif k in NUMERIC_FIELDS:
            v = numeric_value(v)
        setattr(cfg, k, v)


def _yaml_loader() -> type:
    """PyYAML's ``SafeLoader`` plus YAML 1.2's float syntax: ``5e-4`` and ``1E3`` are floats, not strings."""
    import yaml

    class Yaml12FloatLoader(yaml.SafeLoader):
        pass

    Yaml12FloatLoader.add_implicit_resolver(  # YAML 1.1 requires a dot and a signed exponent; 1.2 does not
        "tag:yaml.org,2002:float", re.compile(f"^{_SCIENTIFIC.pattern}$"), list("-+0123456789."))
    return Yaml12FloatLoader


def load_yaml(text: str) -> Any:
    """Parse YAML ``text`` safely, reading ``1e-3`` as a float (as YAML 1.2 and JSON do)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = load_yaml(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise ConfigError(f"cannot parse config file {path}: {first_line(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Build a validated :class:`TrainConfig`: defaults ← preset ← config file ← overrides.

    ``None`` values in ``overrides`` are ignored (an unset CLI flag). A config file may name its own
    ``preset``; an explicit ``preset`` argument wins.
    """
    from coreaug.train.presets import PRESETS

    if config_file is not None and not isinstance(config_file, (str, os.PathLike)):
        raise ConfigError(f"config must be the path of a config file, got {config_file!r}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a mapping of config keys to values, got {overrides!r}")
    file_values = dict(read_config_file(config_file)) if config_file is not None else {}
    file_preset = file_values.pop("preset", None)
    preset = preset if preset is not None else file_preset
    cfg = TrainConfig()
    if preset is not None:
        if not isinstance(preset, str):
            raise ConfigError(f"preset must be a preset name, got {preset!r}; choose one of: {', '.join(PRESETS)}")
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        _apply(cfg, PRESETS[preset], f"preset {preset!r}")
    _apply(cfg, file_values, f"config file {config_file}")
    _apply(cfg, {k: v for k, v in (overrides or {}).items() if v is not None}, "overrides")
    return validate(cfg)


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a config from ``config.json`` / a checkpoint (unknown keys are an error)."""
    cfg = TrainConfig()
    _apply(cfg, values, "saved config")
    return validate(cfg)
