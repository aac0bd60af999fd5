"""Image folders in the ImageNet layout: ``DIR/<label>/*.jpg``, listed and checked.

    listing = scan(Path("flowers/"))   # labels, and every image with its size and mtime

``DIR/train`` and ``DIR/val`` (and optionally ``DIR/test``) are used as given
when present; otherwise ``DIR`` itself holds the class folders and the caller
makes a seeded split. Images are files with one of ``EXTENSIONS``; names starting
with a dot (``.DS_Store``, macOS ``._*`` resource forks) are not images.
Decoding is ``imagedata.image.decode``; caching and splitting ``imagedata.dataset``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PARTS = ("train", "val", "test")


class ImageFolderError(ValueError):
    """Bad data given by the user (a folder or a file); the message says what to do."""


@dataclass(frozen=True)
class ImageFile:
    part: str        # "all", or "train", "val", "test" for a DIR/train layout
    label: str
    rel: str         # path relative to the data dir
    size: int        # bytes
    mtime_ns: int


@dataclass(frozen=True)
class Listing:
    root: Path
    parts: dict      # {part: folder}
    labels: list     # the training classes, sorted: class index = position
    files: list      # [ImageFile], by part (as in ``parts``), label, then name

    def path(self, f: ImageFile) -> Path:
        return self.root / f.rel


def _expected(root: Path) -> str:
    return f"expected {root}/<label>/*.jpg"


def _parts(root: Path) -> dict[str, Path]:
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"data dir '{root}' does not exist or is not a folder ({_expected(root)})")
    if (root / "train").is_dir():
        parts = {s: root / s for s in PARTS if (root / s).is_dir()}
        if "val" not in parts and "test" not in parts:
            raise ImageFolderError(f"data dir '{root}' has a train/ folder but no val/ or test/ "
                                   f"(add {root}/val/<label>/*.jpg, or flatten to {root}/<label>/)")
        return parts
    return {"all": root}


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:
        raise ImageFolderError(f"cannot list '{folder}': {e.strerror or e}") from None


def _images(folder: Path) -> list[os.DirEntry]:
    return [e for e in _entries(folder) if os.path.splitext(e.name)[1].lower() in EXTENSIONS and e.is_file()]


def _classes(folder: Path) -> dict[str, list[os.DirEntry]]:
    """{label: image entries} for folder/<label>/*; every class has at least one image."""
    names = [e.name for e in _entries(folder) if e.is_dir()]
    if not names:
        raise ImageFolderError(f"data dir '{folder}' has no class folders ({_expected(folder)})")
    out = {}
    for name in names:
        images = _images(folder / name)
        if not images:
            raise ImageFolderError(f"class folder '{folder / name}' has no images "
                                   f"(expected {', '.join('*' + e for e in EXTENSIONS)})")
        out[name] = images
    return out


def scan(root: Path) -> Listing:
    """Every image under root with its size and mtime; raises naming the path when the tree is wrong:
    missing, no class folders, an empty class, a single class, or val/test classes training lacks."""
    root = Path(root)
    parts = _parts(root)
    trees = {name: _classes(path) for name, path in parts.items()}
    main = "train" if "train" in trees else "all"
    labels = list(trees[main])
    if len(labels) < 2:
        raise ImageFolderError(f"data dir '{parts[main]}' has one class folder, '{labels[0]}': a "
                               f"classifier needs at least 2 ({_expected(parts[main])})")
    files = []
    for name, tree in trees.items():
        prefix = "" if name == "all" else f"{name}/"
        for label, entries in tree.items():
            if label not in labels:
                raise ImageFolderError(f"class folder '{parts[name] / label}' is not among the training "
                                       f"classes {labels} (add it to {parts[main]}/ or remove it)")
            for e in entries:
                try:
                    st = e.stat()
                except OSError as err:
                    raise ImageFolderError(f"cannot read '{e.path}': {err.strerror or err}") from None
                files.append(ImageFile(name, label, f"{prefix}{label}/{e.name}", st.st_size, st.st_mtime_ns))
    return Listing(root, parts, labels, files)


def layout(root: Path) -> dict[str, Path]:
    """Which split folders the tree has ({'train': ..., 'val': ...} or {'all': root}), after the
    checks of ``scan``: CLIs call it to fail on a bad folder before loading TensorFlow."""
    return scan(root).parts
