"""One image file -> the uint8 pixels the model is trained on, the way a viewer shows the file.

    x = decode(Path("cat/1.jpg"), resolution=96, channels=3)   # (96, 96, 3) uint8

Every mode Pillow opens becomes 8-bit RGB (``channels=3``) or grayscale (``channels=1``):

* EXIF orientation is applied first, as viewers do: a phone photo taken upright is
  trained upright. A broken EXIF block leaves the image as stored (what a viewer
  that cannot read it shows), it does not reject the photo;
* ``1``, ``L``, ``P`` without transparency, ``RGB``, ``CMYK``, ``YCbCr``: Pillow's
  own conversions. Embedded colour profiles are not applied;
* transparency (``LA``, ``RGBA``, ``PA``, ``P`` with a ``tRNS`` entry, and their
  premultiplied forms) is composited over white, which is what a browser shows on a
  white page. Converting without compositing would instead expose whatever colour
  the transparent pixels happen to store, often black or noise;
* 16-bit grayscale (``I;16``, ``I;16B``...) maps its full range 0..65535 onto
  0..255 (value / 257, rounded), as 16-bit PNG viewers do; Pillow's plain
  ``convert("L")`` clips at 255 instead and turns almost every pixel white;
* 32-bit integer (``I``) is read as 16-bit, which is what Pillow hands over for
  16-bit TIFFs: values are clipped to 0..65535, then scaled like ``I;16``;
* 32-bit float (``F``) is taken as 0.0 (black) .. 1.0 (white), the display range of
  float-image viewers; values outside are clipped and NaN is black.
A multi-frame file (animated GIF, multi-page TIFF) gives its first frame.

Bad images raise ``ImageFolderError`` naming the file: unreadable, truncated or
malformed files, and images over Pillow's ``MAX_IMAGE_PIXELS`` (decompression
bombs; Pillow raises ``DecompressionBombError``, which is not an ``OSError``, above
twice the limit and only warns between one and two times it: both are rejected here).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageOps

from imagedata.folder import ImageFolderError


class BadImage(ImageFolderError):
    """An image that cannot be decoded; ``reason`` without the path, for the cache's index."""

    def __init__(self, path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image '{path}': {reason} (fix or remove it, or pass --skip-bad-images)")

    def __reduce__(self):   # picklable, for worker processes
        return BadImage, (self.path, self.reason)

# Part of the decoded-image cache's key: a change here (or another Pillow) decodes again.
DECODER = f"imagedata.image/2 Pillow {PIL.__version__}"
RESAMPLE = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST, "bicubic": Image.BICUBIC}
BACKGROUND = (255, 255, 255)   # under transparent pixels
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _composite(im: Image.Image) -> Image.Image:
    """RGBA-like -> RGB over BACKGROUND."""
    rgba = im.convert("RGBA")
    base = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _scale_to_uint8(a: np.ndarray, top: float) -> Image.Image:
    """Grayscale values in [0, top] -> L, rounding halves up; outside clipped, NaN black."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0)
    return Image.fromarray(np.floor(np.clip(a, 0, top) * (255 / top) + 0.5).astype(np.uint8), "L")


def viewable(im: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode -> "RGB" (channels 3) or "L" (channels 1), as a viewer shows it."""
    mode = im.mode
    if mode in SIXTEEN_BIT:
        im = _scale_to_uint8(np.asarray(im), 65535.0)
    elif mode == "F":
        im = _scale_to_uint8(np.asarray(im), 1.0)
    elif mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        im = _composite(im)
    elif mode == "P":
        im = im.convert("RGB")
    return im.convert("RGB" if channels == 3 else "L")


def _upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:   # unreadable EXIF: a viewer shows the image as stored, so do we
        return im


def _check_size(im: Image.Image) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    w, h = im.size
    if limit and w * h > limit:
        raise Image.DecompressionBombError(
            f"{w}x{h} is {w * h} pixels, more than Pillow's safety limit of {limit} "
            f"(Image.MAX_IMAGE_PIXELS): a decompression bomb, or a photo far larger than training needs")


def decode(path: Path, resolution: int, channels: int, interpolation: str = "bilinear") -> np.ndarray:
    """One image -> (resolution, resolution, channels) uint8; raises BadImage naming the file.

    The image is squashed to a square (no crop), as the model's preprocessing has always done.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns about the file (corrupt EXIF, a bomb below twice the limit, which
            # _check_size rejects); what matters is raised, the rest would only be noise.
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                _check_size(im)
                im.load()
                im = viewable(_upright(im), channels)
                im = im.resize((resolution, resolution), RESAMPLE[interpolation])
                a = np.asarray(im, np.uint8)
    except FileNotFoundError:
        raise BadImage(path, "it disappeared while the data was read (run again once the folder "
                             "stops changing)") from None
    except Exception as e:   # Pillow raises OSError, ValueError, SyntaxError, EOFError, struct.error...
        reason = str(e) or type(e).__name__
        raise BadImage(path, f"too large: {reason}" if isinstance(e, Image.DecompressionBombError) else reason) \
            from None
    return a.reshape(resolution, resolution, channels)
