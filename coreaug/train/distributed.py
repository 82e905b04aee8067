"""Moved to :mod:`coreaug.distributed` (the public API uses it too); kept so old imports work."""

from coreaug.distributed import (  # noqa: F401
    DistContext, all_gather_object, all_reduce_sum, barrier, broadcast_object, cleanup, gather_strided,
    setup_distributed,
)
