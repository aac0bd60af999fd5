import numpy as np
import pytest
from PIL import Image

from imagedata.dataset import load_dataset
from imagedata.folder import ImageFolderError
from imagedata.preprocess import Preprocessing

P = Preprocessing(resolution=16, channels=3)


def test_flat_folder_is_split_deterministically(image_folder):
    root = image_folder(per_class=10)
    a = load_dataset(str(root), P, seed=3)
    b = load_dataset(str(root), P, seed=3)
    assert a.labels == ["cat", "dog", "fox"]
    sizes = {k: len(getattr(a, k)) for k in ("train", "val", "calibration", "test")}
    assert sum(sizes.values()) == 30 and min(sizes.values()) >= 1
    assert a.train.x.shape[1:] == (16, 16, 3) and a.train.x.dtype == np.uint8
    for k in sizes:
        np.testing.assert_array_equal(getattr(a, k).y, getattr(b, k).y)
        np.testing.assert_array_equal(getattr(a, k).x, getattr(b, k).x)
    c = load_dataset(str(root), P, seed=4)
    assert not np.array_equal(a.test.x, c.test.x)


def test_train_val_layout_is_used_as_given(image_folder, tmp_path):
    image_folder(tmp_path / "d" / "train", per_class=8)
    image_folder(tmp_path / "d" / "val", per_class=2)
    ds = load_dataset(str(tmp_path / "d"), P)
    assert len(ds.test) == 6                       # val/ is the held-out split
    assert len(ds.train) + len(ds.val) + len(ds.calibration) == 24
    assert ds.describe()["layout"] == ["train", "val"]


def test_grayscale_conversion(image_folder):
    ds = load_dataset(str(image_folder()), Preprocessing(resolution=8, channels=1))
    assert ds.train.x.shape[1:] == (8, 8, 1)


@pytest.mark.parametrize("make_bad, message", [
    (lambda r: r / "missing", "does not exist"),
    (lambda r: (r.mkdir(), r)[1], "has no class folders"),
    (lambda r: ((r / "a").mkdir(parents=True), r)[1], "has no images"),
])
def test_bad_trees_name_the_path(tmp_path, make_bad, message):
    root = make_bad(tmp_path / "data")
    with pytest.raises(ImageFolderError, match=message) as e:
        load_dataset(str(root), P)
    assert str(tmp_path / "data") in str(e.value)


def test_corrupt_image_fails_or_is_skipped(image_folder, capsys):
    root = image_folder(per_class=10)
    bad = root / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ImageFolderError, match=f"cannot read image '{bad}'.*--skip-bad-images"):
        load_dataset(str(root), P)
    ds = load_dataset(str(root), P, skip_bad_images=True)
    assert ds.describe()["skipped_images"] == [str(bad)]
    assert sum(len(getattr(ds, k)) for k in ("train", "val", "calibration", "test")) == 30
    assert "skipped 1 unreadable image" in capsys.readouterr().err


def test_one_class_is_an_error_naming_it(image_folder):
    root = image_folder(classes=("cat",))
    with pytest.raises(ImageFolderError, match=f"data dir '{root}' has one class folder, 'cat': a classifier "
                                               f"needs at least 2"):
        load_dataset(str(root), P)


def test_a_class_emptied_by_skipping_is_an_error_naming_it(image_folder):
    root = image_folder(per_class=10)
    for f in (root / "dog").iterdir():
        f.write_bytes(b"not an image")
    with pytest.raises(ImageFolderError, match="cannot read image"):
        load_dataset(str(root), P)
    with pytest.raises(ImageFolderError, match=f"class 'dog' has no readable images left after skipping its "
                                               f"bad ones \\(first: {root / 'dog'}/0.jpg\\): fix them, or remove "
                                               f"{root / 'dog'}"):
        load_dataset(str(root), P, skip_bad_images=True)


def test_a_split_emptied_by_skipping_is_an_error(image_folder, tmp_path):
    image_folder(tmp_path / "d" / "train", per_class=8)
    image_folder(tmp_path / "d" / "val", per_class=1)
    for f in (tmp_path / "d" / "val").rglob("*.*"):
        f.write_bytes(b"junk")
    with pytest.raises(ImageFolderError, match="the test split of .* has no readable images left"):
        load_dataset(str(tmp_path / "d"), P, skip_bad_images=True)


def test_hidden_files_are_not_images_and_more_formats_are(image_folder):
    root = image_folder(per_class=10)
    (root / "cat" / "._0.jpg").write_bytes(b"macOS resource fork")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    Image.new("RGB", (20, 24), (1, 2, 3)).save(root / "cat" / "extra.webp")
    Image.new("RGB", (20, 24), (1, 2, 3)).save(root / "dog" / "extra.bmp")
    ds = load_dataset(str(root), P)
    assert sum(len(getattr(ds, k)) for k in ("train", "val", "calibration", "test")) == 32
