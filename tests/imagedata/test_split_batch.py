"""Split.batch: the rows training asks for, equal to plain indexing, without growing the process."""
import numpy as np
import pytest

from imagedata.dataset import SPLITS, Split, load_dataset
from imagedata.preprocess import Preprocessing

P = Preprocessing(resolution=24, channels=3)


def _orders(n: int, rng) -> list[np.ndarray]:
    return [rng.permutation(n), rng.integers(0, n, 3 * n), np.arange(n), np.arange(n)[::-1],
            np.array([n - 1, -1, 0, -n, *(np.arange(2, 5) % n)]),
            np.array([], np.int64), np.array([0], np.uint8)]


def test_batch_of_a_cached_split_equals_plain_indexing(fashion_folder, tmp_path):
    ds = load_dataset(str(fashion_folder(per_class=40)), P, cache_dir=tmp_path, skip_bad_images=True)
    rng = np.random.default_rng(0)
    for name in SPLITS:
        split = getattr(ds, name)
        assert split.rows is not None
        plain = np.array(split.x)   # the whole split in memory
        for idx in _orders(len(split), rng):
            got = split.batch(idx)
            assert got.dtype == np.uint8 and got.flags.c_contiguous and got.flags.writeable
            np.testing.assert_array_equal(got, plain[idx])
        head = split.take(5)
        np.testing.assert_array_equal(head.batch(np.array([4, 0, 2])), plain[[4, 0, 2]])


def test_batch_of_an_in_memory_split(fashion_folder):
    x = np.random.default_rng(1).integers(0, 255, (50, 8, 8, 1), dtype=np.uint8)
    split = Split(x, np.arange(50))
    for idx in _orders(50, np.random.default_rng(2)):
        got = split.batch(idx)
        np.testing.assert_array_equal(got, x[idx])
        if len(idx):
            got[0] = 0
    np.testing.assert_array_equal(split.x, x)   # a copy: writing to a batch leaves the split alone


def test_fashion_mnist_splits_batch():
    ds = load_dataset("fashion_mnist", Preprocessing(resolution=28, channels=1))
    idx = np.random.default_rng(3).permutation(len(ds.train))[:256]
    np.testing.assert_array_equal(ds.train.batch(idx), ds.train.x[idx])


@pytest.mark.parametrize("bad, error", [(np.array([0, 40]), IndexError), (np.array([-41]), IndexError),
                                        (np.array([0.5]), TypeError), (np.zeros((2, 2), int), TypeError)])
def test_bad_indices(bad, error, fashion_folder, tmp_path):
    ds = load_dataset(str(fashion_folder(per_class=20, corrupt=False)), P, cache_dir=tmp_path)
    split = Split(ds.train.x[:40], ds.train.y[:40], ds.train.rows)
    with pytest.raises(error):
        split.batch(bad)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_reading_epochs_through_batch_keeps_rss_flat(fashion_folder, tmp_path):
    """Three shuffled epochs of a 19 MiB split add (almost) nothing to RSS; the memory map adds the split."""
    p = Preprocessing(resolution=224, channels=3)   # 147 KiB a row
    ds = load_dataset(str(fashion_folder(per_class=60, size=32, corrupt=False)), p, cache_dir=tmp_path)
    split, rng = ds.train, np.random.default_rng(4)
    size = split.x.nbytes
    assert size > 15 * 2**20
    for k in range(0, len(split), 16):   # a first epoch lets malloc settle: its heap keeps one batch's buffer
        split.batch(np.arange(k, min(k + 16, len(split))))
    before = _rss_bytes()
    for _ in range(3):
        order = rng.permutation(len(split))
        for k in range(0, len(split), 16):
            split.batch(order[k:k + 16])
    through_batch = _rss_bytes() - before
    for k in range(0, len(split), 16):
        np.asarray(split.x[order[k:k + 16]])   # the same reads through the map
    through_map = _rss_bytes() - before - through_batch
    assert through_batch < 0.1 * size, (through_batch, size)
    assert through_map > 0.8 * size, (through_map, size)
