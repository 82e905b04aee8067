"""The public API: augmented coresets in your own training loop.

Three names are the contract (also importable from ``coreaug``)::

    coreset = coreaug.AugmentedCoreset(train_set, strong=my_strong_transform, selector="coreset",
                                       fraction=0.1, reselect_every=5, regime="subset-only", seed=0)
    for epoch in range(epochs):
        for x, y, w in coreset.loader(model, epoch, batch_size=128):   # reselects when due
            loss = coreaug.weighted_loss(model(x), y, w)

and the one-shot ``indices, weights = coreaug.select_coreset(model, dataset, selector=..., fraction=...)``
(dataset indices, never positions). ``coreaug train``, ``coreaug select``, the training diagnostics
and the Lightning / Hugging Face integrations all go through this one pipeline.
"""

from coreaug.api.coreset import REGIMES, AugmentedCoreset, EpochLoader
from coreaug.api.items import DictItems
from coreaug.api.loss import weighted_loss
from coreaug.api.selection import CoresetSelection, select_coreset

__all__ = ["AugmentedCoreset", "CoresetSelection", "DictItems", "EpochLoader", "REGIMES", "select_coreset",
           "weighted_loss"]
