"""Moved to :mod:`coreaug.distributed` (the public API uses it too); this alias keeps old imports working
and says where to import from instead."""

import warnings

from coreaug.distributed import (  # noqa: F401
    DistContext, all_gather_object, all_reduce_sum, barrier, broadcast_object, cleanup, gather_strided,
    setup_distributed,
)

warnings.warn("coreaug.train.distributed moved to coreaug.distributed; import from there", DeprecationWarning,
              stacklevel=2)
