"""ShuffledBatches: batch bookkeeping shared by the baseline sequences."""
import pytest

from rsna_detector.baselines.batching import ShuffledBatches


class Paths(ShuffledBatches):
    def __init__(self, n, batch_size, shuffle, seed=0):
        self.paths, self.batch_size, self.shuffle = list(range(n)), batch_size, shuffle
        self._init_order(None, seed)


def test_batches_cover_every_path_once_with_a_short_last_batch():
    batches = Paths(7, 3, shuffle=False)
    assert len(batches) == 3
    assert [batches.batch_indices(i).tolist() for i in range(3)] == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(IndexError, match="batch 3 of 3"):
        batches.batch_indices(3)


def test_shuffling_is_seeded_and_redrawn_each_epoch():
    a, b = Paths(20, 20, shuffle=True, seed=5), Paths(20, 20, shuffle=True, seed=5)
    first = a.batch_indices(0).tolist()
    assert first == b.batch_indices(0).tolist() and sorted(first) == list(range(20)) and first != list(range(20))
    a.on_epoch_end()
    assert a.batch_indices(0).tolist() != first
