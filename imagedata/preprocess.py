"""The one definition of how pixels become model input, shared by host and device.

    >>> p = Preprocessing(resolution=32, channels=1)
    >>> p.normalize(np.full((1, 32, 32, 1), 255, np.uint8)).max()
    1.0

Resizing happens once, on the host, with Pillow (``interpolation``); what is
stored in evaluation packs is already (N, resolution, resolution, channels)
uint8. Everything after that -- scaling to [-1, 1] and quantizing to the input
tensor's dtype -- lives here and imports only numpy, so the device runner
reproduces the host exactly. Python 3.9 compatible on purpose: Pis run old stacks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict

import numpy as np

INTERPOLATIONS = ("bilinear", "nearest", "bicubic")


class PreprocessingError(ValueError):
    pass


@dataclass(frozen=True)
class Preprocessing:
    resolution: int          # square input, pixels per side
    channels: int            # 1 = grayscale, 3 = RGB
    mean: float = 127.5      # float input = (pixel - mean) / std, so [-1, 1]
    std: float = 127.5
    interpolation: str = "bilinear"

    def __post_init__(self):
        if int(self.resolution) != self.resolution or self.resolution < 8:
            raise PreprocessingError(f"resolution must be an integer >= 8, got {self.resolution!r}")
        if self.channels not in (1, 3):
            raise PreprocessingError(f"channels must be 1 or 3, got {self.channels!r}")
        if not self.std > 0:
            raise PreprocessingError(f"std must be > 0, got {self.std!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise PreprocessingError(
                f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")

    @property
    def input_shape(self):
        return (self.resolution, self.resolution, self.channels)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Preprocessing":
        known = {k: d[k] for k in ("resolution", "channels", "mean", "std", "interpolation") if k in d}
        return cls(**known)

    def check_images(self, images: np.ndarray) -> None:
        """Raise unless images are (N, H, W, C) uint8 at this resolution."""
        if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise PreprocessingError(
                f"expected (N, {self.resolution}, {self.resolution}, {self.channels}) uint8 images, "
                f"got {images.shape} {images.dtype}")

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 -> float32 model input."""
        return ((images.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std))

    def quantize_input(self, images: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
        """uint8 pixels -> the input tensor's dtype.

        Float inputs get ``normalize``. Integer inputs are quantized with the
        tensor's own (scale, zero_point): q = round(x / scale) + zero_point
        (halves away from zero), clipped to the dtype's range -- what the converter assumed in calibration.
        """
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            return self.normalize(images).astype(dtype)
        if not scale:
            raise PreprocessingError(f"integer input of dtype {dtype} has no quantization scale")
        info = np.iinfo(dtype)
        # float64, and halves rounded away from zero as TFLite's own Quantize op does
        # (std::round). In float32, or with numpy's round-half-to-even, the 256 pixel
        # values of a [-1, 1] input with scale 2/255 collapse onto 191 or 129 levels.
        v = ((images.astype(np.float64) - self.mean) / self.std) / scale
        q = np.trunc(v + np.copysign(0.5, v)) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)
