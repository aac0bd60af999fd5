"""Image folders in the ImageNet layout: ``DIR/<label>/*.jpg|jpeg|png``.

    splits, labels, bad = read_tree("flowers/", resolution=96, channels=3)

``DIR/train`` and ``DIR/val`` (and optionally ``DIR/test``) are used as given
when present; otherwise ``DIR`` itself holds the class folders and the caller
makes a seeded split. Images are decoded with Pillow, converted to RGB (or L
for one channel) and resized to (resolution, resolution).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

EXTENSIONS = {".jpg", ".jpeg", ".png"}
RESAMPLE = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST, "bicubic": Image.BICUBIC}


class ImageFolderError(ValueError):
    pass


def class_folders(root: Path) -> dict[str, list[Path]]:
    """{label: sorted image paths} for root/<label>/*; raises naming the path."""
    if not root.is_dir():
        raise ImageFolderError(f"data dir '{root}' does not exist or is not a folder "
                               f"(expected {root}/<label>/*.jpg)")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ImageFolderError(f"data dir '{root}' has no class folders (expected {root}/<label>/*.jpg)")
    out = {}
    for c in classes:
        files = sorted(p for p in c.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not files:
            raise ImageFolderError(f"class folder '{c}' has no images "
                                   f"(expected *.jpg, *.jpeg or *.png)")
        out[c.name] = files
    return out


def decode(path: Path, resolution: int, channels: int, interpolation: str = "bilinear") -> np.ndarray:
    """One image -> (resolution, resolution, channels) uint8; raises ImageFolderError."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            im = im.resize((resolution, resolution), RESAMPLE[interpolation])
            a = np.asarray(im, np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageFolderError(f"cannot read image '{path}': {e} "
                               f"(fix or remove it, or pass --skip-bad-images)") from None
    return a.reshape(resolution, resolution, channels)


def read_images(files_by_label: dict[str, list[Path]], labels: list[str], resolution: int,
                channels: int, interpolation: str, skip_bad: bool) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Decode every file. Returns (x (N,H,W,C) uint8, y (N,) int64, skipped paths)."""
    xs, ys, bad = [], [], []
    for label, files in files_by_label.items():
        if label not in labels:
            raise ImageFolderError(f"class folder '{label}' is not among the training classes {labels}")
        for f in files:
            try:
                xs.append(decode(f, resolution, channels, interpolation))
            except ImageFolderError:
                if not skip_bad:
                    raise
                bad.append(f)
                continue
            ys.append(labels.index(label))
    x = np.stack(xs) if xs else np.zeros((0, resolution, resolution, channels), np.uint8)
    return x, np.asarray(ys, np.int64), bad


def layout(root: Path) -> dict[str, Path]:
    """Which split folders the tree has: {'train': ..., 'val': ..., 'test': ...} or {'all': root}."""
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"data dir '{root}' does not exist or is not a folder "
                               f"(expected {root}/<label>/*.jpg)")
    if (root / "train").is_dir():
        splits = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
        if "val" not in splits and "test" not in splits:
            raise ImageFolderError(f"data dir '{root}' has a train/ folder but no val/ or test/ "
                                   f"(add {root}/val/<label>/*.jpg, or flatten to {root}/<label>/)")
        return splits
    return {"all": root}
