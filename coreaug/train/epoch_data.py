"""Moved to :mod:`coreaug.api.epoch` (epoch composition belongs to the public API) and
:mod:`coreaug.runtime` (seeding); kept so old imports work."""

from coreaug.api.epoch import (  # noqa: F401
    STRONG, WEAK, EpochDataset, EpochPlan, PersistentEpochLoader, make_loader, plan_epoch,
)
from coreaug.runtime import derive_seed, seed_everything  # noqa: F401
