"""Every image mode Pillow opens becomes the uint8 RGB or grayscale a viewer would show; bad files are named."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagedata.dataset import load_dataset
from imagedata.folder import ImageFolderError
from imagedata.image import BadImage, decode
from imagedata.preprocess import Preprocessing

R = 8   # images are made R x R and decoded with nearest: no resampling in the way


def halves(left, right, mode: str, dtype=None) -> Image.Image:
    """An R x R image of `mode`, `left` in columns 0-3 and `right` in 4-7."""
    if dtype is not None:
        a = np.empty((R, R), dtype)
        a[:, :R // 2], a[:, R // 2:] = left, right
        im = Image.fromarray(a)
        assert im.mode == mode, im.mode
        return im
    im = Image.new(mode, (R, R), right)
    im.paste(left, (0, 0, R // 2, R))
    return im


def pixels(path: Path, channels: int = 3) -> tuple:
    """(left, right) pixel of the decoded image, as tuples."""
    a = decode(path, R, channels, "nearest")
    return tuple(int(v) for v in a[0, 0]), tuple(int(v) for v in a[0, -1])


def palette(transparent: bool) -> Image.Image:
    im = halves(0, 1, "P")
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)   # 0 red, 1 blue
    if transparent:
        im.info["transparency"] = 0
    return im


CASES = [   # name, file, how it is made, (left, right) as RGB
    ("1", "png", lambda: halves(1, 0, "1"), ((255,) * 3, (0,) * 3)),
    ("L", "png", lambda: halves(100, 30, "L"), ((100,) * 3, (30,) * 3)),
    ("LA: transparent over white", "png", lambda: halves((100, 0), (100, 255), "LA"), ((255,) * 3, (100,) * 3)),
    ("P", "png", lambda: palette(False), ((255, 0, 0), (0, 0, 255))),
    ("P with tRNS: transparent over white", "png", lambda: palette(True), ((255,) * 3, (0, 0, 255))),
    ("P with transparency, GIF", "gif", lambda: palette(True), ((255,) * 3, (0, 0, 255))),
    ("RGB", "png", lambda: halves((10, 20, 30), (200, 100, 0), "RGB"), ((10, 20, 30), (200, 100, 0))),
    ("RGBA: half transparent red over white", "png", lambda: halves((255, 0, 0, 128), (0, 255, 0, 255), "RGBA"),
     ((255, 127, 127), (0, 255, 0))),
    ("CMYK", "tif", lambda: halves((255, 0, 0, 0), (0, 0, 0, 255), "CMYK"), ((0, 255, 255), (0, 0, 0))),
    ("I;16: full range to 0..255", "png", lambda: halves(32768, 65535, "I;16", np.uint16), ((128,) * 3, (255,) * 3)),
    ("I;16 dark", "png", lambda: halves(257 * 100, 0, "I;16", np.uint16), ((100,) * 3, (0,) * 3)),
    ("I: read as 16-bit, clipped", "tif", lambda: halves(128 * 257, 70000, "I", np.int32), ((128,) * 3, (255,) * 3)),
    ("I negative", "tif", lambda: halves(-5, 257 * 7, "I", np.int32), ((0,) * 3, (7,) * 3)),
    ("F: 0..1", "tif", lambda: halves(0.5, 1.0, "F", np.float32), ((128,) * 3, (255,) * 3)),
    ("F outside 0..1", "tif", lambda: halves(-1.0, 2.0, "F", np.float32), ((0,) * 3, (255,) * 3)),
    ("F NaN", "tif", lambda: halves(np.nan, 0.2, "F", np.float32), ((0,) * 3, (51,) * 3)),
]


@pytest.mark.parametrize("name, ext, make, expected", CASES, ids=[c[0] for c in CASES])
def test_mode_decodes_as_a_viewer_shows_it(tmp_path, name, ext, make, expected):
    im = make()
    path = tmp_path / f"image.{ext}"
    im.save(path)
    with Image.open(path) as check:
        assert check.mode == im.mode or (ext == "gif" and check.mode == "P"), check.mode   # the mode under test
    assert pixels(path) == expected
    gray = pixels(path, channels=1)
    want = tuple(round(0.299 * r + 0.587 * g + 0.114 * b) for r, g, b in expected)
    assert all(abs(g[0] - w) <= 1 for g, w in zip(gray, want)), (gray, want)


def test_cmyk_jpeg(tmp_path):
    halves((255, 0, 0, 0), (0, 0, 0, 0), "CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    (left, right) = pixels(tmp_path / "c.jpg")
    assert np.allclose(left, (0, 255, 255), atol=6) and np.allclose(right, (255, 255, 255), atol=6)


@pytest.mark.parametrize("orientation, bright", [(1, "left"), (3, "right"), (6, "top"), (8, "bottom")])
def test_exif_rotated_jpeg_is_shown_upright(tmp_path, orientation, bright):
    stored = Image.new("L", (2 * R, R), 0)
    stored.paste(255, (0, 0, R, R))   # the left half of the stored pixels is white
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    a = decode(tmp_path / "photo.jpg", R, 1, "nearest")[..., 0].astype(int)
    regions = {"left": a[:, :R // 2], "right": a[:, R // 2:], "top": a[:R // 2], "bottom": a[R // 2:]}
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[bright]
    assert regions[bright].mean() > 200 and regions[opposite].mean() < 50


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, extra: bytes = b"") -> bytes:
    """A grayscale PNG whose header claims width x height; its pixel data is a stub."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


BAD = {   # file name: (bytes, what the message says)
    "bomb.png": (png_bytes(20000, 20000), "too large: Image size (400000000 pixels) exceeds limit"),
    "big.png": (png_bytes(10000, 10000), "too large: 10000x10000 is 100000000 pixels, more than Pillow's safety"),
    "text-bomb.png": (png_bytes(8, 8, _chunk(b"zTXt", b"k\0\0" + zlib.compress(b"x" * 2**24))),
                      "Decompressed data too large"),
    "short.png": (png_bytes(64, 64), "image file is truncated"),
    "notes.jpg": (b"these are my notes", "cannot identify image file"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_file_is_a_bad_image_naming_it(tmp_path, name):
    data, message = BAD[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(BadImage, match=f"cannot read image '{tmp_path / name}': .*"
                                       f"(fix or remove it, or pass --skip-bad-images)") as e:
        decode(tmp_path / name, 16, 3)
    assert message in str(e.value)


def test_a_folder_of_every_mode_and_bad_file(tmp_path):
    root = tmp_path / "data"
    for label in ("modes", "plain"):
        (root / label).mkdir(parents=True)
    for k, (name, ext, make, _) in enumerate(CASES):
        make().save(root / "modes" / f"{k:02d}.{ext}")
    for k in range(12):
        halves((k, 2 * k, 3 * k), (9, 9, 9), "RGB").save(root / "plain" / f"{k}.png")
    for name, (data, _) in BAD.items():
        (root / "plain" / name).write_bytes(data)
    p = Preprocessing(resolution=R, channels=3, interpolation="nearest")
    with pytest.raises(ImageFolderError, match=f"cannot read image '{root / 'plain'}/.*; 4 more: "):
        load_dataset(str(root), p)
    ds = load_dataset(str(root), p, skip_bad_images=True, workers=2)
    assert sorted(Path(s).name for s in ds.provenance["skipped_images"]) == sorted(BAD)
    # Each row the worker processes wrote equals decoding its file here.
    entry = Path(ds.provenance["cache"]["path"])
    index = json.loads((entry / "index.json").read_text())
    images = np.load(entry / "images.npy")
    for rel, _, _, _, _, row, error in index["files"]:
        if error is None:
            np.testing.assert_array_equal(images[row], decode(root / rel, R, 3, "nearest"), err_msg=rel)
    assert sum(e is None for *_, e in index["files"]) == len(CASES) + 12
