"""Moved to :mod:`coreaug.api.epoch` (epoch composition belongs to the public API) and
:mod:`coreaug.runtime` (seeding); this alias keeps old imports working and says where to import from instead."""

import warnings

from coreaug.api.epoch import (  # noqa: F401
    STRONG, WEAK, EpochDataset, EpochPlan, PersistentEpochLoader, make_loader, plan_epoch,
)
from coreaug.runtime import derive_seed, seed_everything  # noqa: F401

warnings.warn("coreaug.train.epoch_data moved to coreaug.api.epoch (epochs) and coreaug.runtime (seeds); import "
              "from there", DeprecationWarning, stacklevel=2)
