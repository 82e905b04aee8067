"""Thin wrappers of :mod:`coreaug.api` for training frameworks (optional extras).

* :mod:`coreaug.integrations.lightning` (``pip install -e ".[lightning]"``):
  ``AugmentedCoresetCallback`` (the train dataloader, reselection, checkpointed selection) and
  ``SpectralDiagnosticsCallback`` (``coreaug train --diagnostics-every`` for any Lightning logger).
* :mod:`coreaug.integrations.hf` (``pip install -e ".[hf]"``): ``AugmentedCoresetTrainer``, a
  ``transformers.Trainer`` that trains on the augmented coreset with the weighted loss.

Nothing is imported here: importing a submodule without its extra raises a one-line
:class:`~coreaug.errors.ConfigError` that names the extra (see docs/integrations.md).
"""

from __future__ import annotations

from coreaug.errors import ConfigError

__all__ = ["missing_extra"]


def missing_extra(package: str, extra: str) -> ConfigError:
    """The one-line error for an integration whose optional ``package`` (extra ``[extra]``) is not installed."""
    return ConfigError(f"coreaug.integrations.{extra} needs the optional {package} package: "
                       f'pip install -e ".[{extra}]" (or pip install "coreaug[{extra}]")')
