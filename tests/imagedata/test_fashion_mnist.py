"""Real Fashion-MNIST: the Debian package, or the apt-get download fallback."""
import shutil

import numpy as np
import pytest

from imagedata import fashion_mnist
from imagedata.dataset import load_dataset
from imagedata.preprocess import Preprocessing


def test_loads_real_files_with_expected_shapes_and_classes():
    arrays, prov = fashion_mnist.load()
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["x_test"].shape == (10000, 28, 28)
    assert set(np.unique(arrays["y_test"])) == set(range(10))
    assert np.bincount(arrays["y_test"]).tolist() == [1000] * 10
    assert len(prov["sha256"]) == 4


def test_splits_are_disjoint_and_calibration_is_not_test():
    ds = load_dataset("fashion_mnist", Preprocessing(resolution=32, channels=1), seed=0)
    assert [len(ds.train), len(ds.val), len(ds.calibration), len(ds.test)] == [54000, 5000, 1000, 10000]
    assert ds.train.x.shape[1:] == (32, 32, 1)
    flat = lambda s: {row.tobytes() for row in s.x[:2000]}  # noqa: E731
    assert not flat(ds.calibration) & flat(ds.val)
    assert not flat(ds.calibration) & {r.tobytes() for r in ds.test.x}


@pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("dpkg-deb")), reason="needs apt-get")
def test_apt_download_fallback_unpacks_into_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "not-installed")
    folder = fashion_mnist.locate(tmp_path / "cache")
    assert folder.is_relative_to(tmp_path / "cache")
    assert fashion_mnist.load(tmp_path / "cache")[0]["y_train"].shape == (60000,)
    assert not list((tmp_path / "cache").glob("tmp*")), "temporary download folder left behind"


def test_truncated_cached_file_is_a_clear_error(tmp_path, monkeypatch):
    src = fashion_mnist.locate()
    fake = tmp_path / "fm"
    fake.mkdir()
    for f in fashion_mnist.FILES.values():
        shutil.copy(src / f, fake / f)
    data = (fake / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (fake / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", fake)
    with pytest.raises(Exception, match="t10k-labels-idx1-ubyte.gz.*(corrupt|truncated)"):
        fashion_mnist.load()


@pytest.mark.network
def test_keras_download_when_offline_of_debian():
    arrays = fashion_mnist._keras_download()
    assert arrays["x_test"].shape == (10000, 28, 28)
