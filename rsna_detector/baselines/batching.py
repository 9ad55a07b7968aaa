"""Batch bookkeeping shared by the baselines' input sequences (classifier, RetinaNet)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import RsnaDetectorError

__all__ = ["ShuffledBatches", "BatchIndexError"]


class BatchIndexError(RsnaDetectorError, IndexError):
    """A batch index past the end (an ``IndexError``, which ends a plain iteration over the batches)."""


class ShuffledBatches:
    """Mixin: a list of ``paths`` served in batches, in a seeded order reshuffled each epoch.

    The class using it sets ``paths``, ``batch_size`` and ``shuffle``, then calls
    :meth:`_init_order`. Batch ``i`` holds the path indices :meth:`batch_indices`
    returns; the last batch may be short.
    """

    def _init_order(self, augmenter, seed):
        """Store (and seed) the augmenter, seed the shuffling, draw the first order."""
        self.augmenter = augmenter
        if augmenter is not None:
            augmenter.seed_(int(seed))
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(self.paths))
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.paths) / self.batch_size)

    def on_epoch_end(self):
        """Draw a new order of the paths when shuffling."""
        if self.shuffle:
            self._order = self._rng.permutation(len(self.paths))

    def batch_indices(self, index):
        """int array of the path indices in batch ``index``; BatchIndexError past the end."""
        if not 0 <= index < len(self):
            raise BatchIndexError(f"batch {index} of {len(self)}")
        return self._order[index * self.batch_size:(index + 1) * self.batch_size]
