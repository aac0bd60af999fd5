"""Quantization configuration: one frozen dataclass, validated on construction.

The CLI's choices come from the Enums below, so the CLI, the recipe recorded in
``quantize.json`` and the docs cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Variant(str, Enum):
    """What each .tflite trades. Sizes are for MobileNetV2 0.35 at 32 px."""
    FLOAT32 = "float32"            # the baseline every other variant is compared with
    FLOAT16 = "float16"            # weights in float16 (0.5x size), computed in float32 on CPU
    DYNAMIC_INT8 = "dynamic_int8"  # int8 weights, float activations quantized on the fly per op
    INT8 = "int8"                  # everything int8, calibrated: for NPUs, DSPs and the fastest CPU kernels
    INT16X8 = "int16x8"            # int16 activations, int8 weights: int8's size, closer to float accuracy

    @property
    def calibrated(self) -> bool:
        """Needs a representative dataset to fix activation ranges."""
        return self in (Variant.INT8, Variant.INT16X8)


class IO(str, Enum):
    """Input/output tensor type of the ``int8`` variant (the others keep float32)."""
    UINT8 = "uint8"       # for apps: raw 0-255 pixels in (MediaPipe Tasks, TFLite's hosted quantized MobileNets)
    INT8 = "int8"         # for NPUs, DSPs and Edge TPU compilers that want int8 at both ends
    FLOAT32 = "float32"   # quantize/dequantize inside the model; the caller passes floats


class InputColor(str, Enum):
    """What the exported input takes (``quantize.app_input``)."""
    RGB = "rgb"                # 3 channels, what a camera gives; a grayscale model converts to luminance inside
    AS_TRAINED = "as_trained"  # the channels the model was trained on (1 for Fashion-MNIST)


class Granularity(str, Enum):
    """How many scales a weight tensor of the ``int8`` variant gets (the others: per channel)."""
    PER_TENSOR = "per_tensor"     # one scale per tensor
    PER_CHANNEL = "per_channel"   # one scale (and int64 zero point) per output channel


class ConfigError(ValueError):
    pass


DEFAULT_CALIBRATION = 500


@dataclass(frozen=True)
class QuantizeConfig:
    """``granularity`` trades size for robustness. Per-channel weights cost 12 bytes
    (float32 scale, int64 zero point) per output channel on top of the int32
    bias: for MobileNetV2 0.35 (14k channels for 0.42M weights) that is a third
    of the int8 file, which ends up 0.39x the float32 one; per-tensor makes it
    0.29x. Measured on the default Fashion-MNIST model (12 epochs, 10k test
    images), int8 top-1 against the float32 .tflite was -0.16 pt per-tensor
    (98.9% agreement) and +0.11 pt per-channel (99.1%). Large ImageNet
    MobileNets are the known exception: their depthwise kernels' channel ranges
    differ by orders of magnitude and per-tensor weights lose a lot of accuracy
    there -- use per_channel for them, and read the manifest's top-1."""
    variants: tuple = tuple(Variant)
    io: IO = IO.UINT8
    input_color: InputColor = InputColor.RGB
    calibration_size: int = DEFAULT_CALIBRATION   # images from the calibration split, never test
    granularity: Granularity = Granularity.PER_TENSOR
    max_drop: float | None = None   # top-1 points int8 may lose on val; None: no budget (quantize.budget)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        try:
            variants = tuple(Variant(v) for v in self.variants)
            set_("io", IO(self.io))
            set_("input_color", InputColor(self.input_color))
            set_("granularity", Granularity(self.granularity))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if not variants:
            raise ConfigError(f"choose at least one variant of {[v.value for v in Variant]}")
        # Canonical order, duplicates dropped: float32 first, it is every comparison's reference.
        set_("variants", tuple(v for v in Variant if v in variants))
        if int(self.calibration_size) != self.calibration_size or self.calibration_size < 1:
            raise ConfigError(f"calibration_size must be an integer >= 1 (an empty calibration set "
                              f"cannot fix activation ranges), got {self.calibration_size!r}")
        if self.max_drop is not None:
            try:
                set_("max_drop", float(self.max_drop))
            except (TypeError, ValueError):
                raise ConfigError(f"max_drop must be a number of top-1 points, got {self.max_drop!r}") from None
            if not 0 <= self.max_drop < 100:
                raise ConfigError(f"max_drop is the top-1 points int8 may lose against float32 on the "
                                  f"validation split, from 0 to 100, got {self.max_drop!r}")
            if Variant.INT8 not in self.variants:
                raise ConfigError("max_drop is a budget for the int8 variant: add int8 to --variants, "
                                  "or leave --max-drop out")

    @property
    def needs_calibration(self) -> bool:
        return any(v.calibrated for v in self.variants)

    def to_dict(self) -> dict:
        return {"variants": [v.value for v in self.variants], "io": self.io.value,
                "input_color": self.input_color.value, "calibration_size": self.calibration_size,
                "granularity": self.granularity.value,
                # Only when set: recipes without a budget read as they did before it existed.
                **({"max_drop": self.max_drop} if self.max_drop is not None else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "QuantizeConfig":
        # A recipe written before input_color existed built the model's own channels.
        d = {"input_color": InputColor.AS_TRAINED.value, **d}
        return cls(**{k: (tuple(v) if k == "variants" else v) for k, v in d.items()
                      if k in cls.__dataclass_fields__})
