"""Training configuration: one frozen dataclass, validated on construction.

The CLI's choices come from the Enums below, so the CLI, the config recorded in
``model.json`` and the README cannot drift apart.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import Enum



# input size / final feature map size; 32 is the published MobileNets.
OUTPUT_STRIDES = (32, 16, 8, 4)


class Arch(str, Enum):
    V1 = "v1"               # depthwise separable convolutions
    V2 = "v2"               # inverted residuals with linear bottlenecks
    V3_SMALL = "v3-small"   # V2's blocks searched for phones, with squeeze-and-excite and hard-swish
    V3_LARGE = "v3-large"

    @property
    def v3(self) -> bool:
        return self in (Arch.V3_SMALL, Arch.V3_LARGE)


# keras.applications publishes V3 ImageNet weights for these widths only.
V3_IMAGENET_ALPHAS = {False: (0.75, 1.0), True: (1.0,)}   # by minimalistic


class Weights(str, Enum):
    """The named starting points; ``TrainConfig.weights`` also takes a file path."""
    NONE = "none"           # from scratch
    IMAGENET = "imagenet"   # keras.applications' ImageNet weights (needs network)


WEIGHTS_FILES = (".keras", ".weights.h5")   # what --weights PATH reads


class Strategy(str, Enum):
    """tf.distribute strategies. ``batch_size`` is per replica: see ``TrainConfig``."""
    AUTO = "auto"                   # MirroredStrategy with more than one GPU, else one device
    MIRRORED = "mirrored"           # every GPU of this machine (or its logical CPUs)
    MULTI_WORKER = "multi-worker"   # MultiWorkerMirroredStrategy, the cluster from TF_CONFIG


class ConfigError(ValueError):
    pass


def auto_output_stride(resolution: int) -> int:
    """The largest output_stride that leaves a final feature map of at least 4x4.

    That is the published 32 from 128 px up, and 8 for Fashion-MNIST's 28-32 px.
    """
    fitting = [s for s in OUTPUT_STRIDES if resolution // s >= 4]
    return max(fitting) if fitting else min(OUTPUT_STRIDES)


@dataclass(frozen=True)
class TrainConfig:
    """The recipe. Under a strategy with R replicas (devices, over all workers) each replica
    computes ``batch_size`` images a step, so the global batch is ``batch_size * R`` and the
    peak learning rate is ``learning_rate * R`` (the linear scaling rule of Goyal et al.,
    2017); warm-up and decay stay in epochs. With one device nothing scales."""
    arch: Arch = Arch.V1
    alpha: float = 0.5
    minimalistic: bool = False           # V3 only: 3x3 kernels, ReLU, no squeeze-and-excite
    resolution: int = 32
    output_stride: int | None = None     # None: auto_output_stride(resolution)
    channels: int | None = None          # None: 1 for fashion_mnist, else 3
    dropout: float = 0.0
    epochs: int = 21
    batch_size: int = 128
    learning_rate: float = 3e-3          # peak, after linear warm-up; cosine decay to 0
    warmup_epochs: float = 1.0
    weight_decay: float = 5e-5           # AdamW, decoupled
    label_smoothing: float = 0.0
    bn_momentum: float = 0.99
    augment: bool = True                 # random horizontal flip and translation
    translate: int = 2                   # pixels, the largest random shift (zero fill)
    weights: str = Weights.NONE.value    # none, imagenet, or a .keras / .weights.h5 file
    data: str = "fashion_mnist"
    seed: int = 0
    strategy: Strategy = Strategy.AUTO

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        try:
            set_("arch", Arch(self.arch))
            set_("strategy", Strategy(self.strategy))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        set_("weights", str(getattr(self.weights, "value", self.weights)))
        if self.weights not in [w.value for w in Weights] and not self.weights.endswith(WEIGHTS_FILES):
            raise ConfigError(f"weights must be none, imagenet or a {' or '.join(WEIGHTS_FILES)} file, "
                              f"got {self.weights!r}")
        if not 0 < self.alpha <= 4:
            raise ConfigError(f"alpha must be in (0, 4], got {self.alpha!r}")
        if not isinstance(self.minimalistic, bool):
            raise ConfigError(f"minimalistic must be true or false, got {self.minimalistic!r}")
        if self.minimalistic and not self.arch.v3:
            raise ConfigError(f"minimalistic (no squeeze-and-excite, no hard-swish, no 5x5 kernels) is a "
                              f"MobileNet V3 variant: use it with arch v3-small or v3-large, got arch "
                              f"{self.arch.value!r}")
        if int(self.resolution) != self.resolution or not 16 <= self.resolution <= 1024:
            raise ConfigError(f"resolution must be an integer in [16, 1024], got {self.resolution!r}")
        if self.output_stride is None:
            set_("output_stride", auto_output_stride(self.resolution))
        if self.output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"output_stride must be one of {OUTPUT_STRIDES}, got {self.output_stride!r}")
        if self.channels is None:
            gray = self.data == "fashion_mnist" and self.weights != Weights.IMAGENET.value
            set_("channels", 1 if gray else 3)
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.weights == Weights.IMAGENET.value and self.channels != 3:
            raise ConfigError("--weights imagenet needs 3 input channels, got channels=1")
        if not 0 <= self.bn_momentum < 1:
            raise ConfigError(f"bn_momentum must be in [0, 1), got {self.bn_momentum!r}")
        published = V3_IMAGENET_ALPHAS[self.minimalistic]
        if self.weights == Weights.IMAGENET.value and self.arch.v3 and self.alpha not in published:
            kind = "minimalistic " if self.minimalistic else ""
            raise ConfigError(f"keras.applications has {kind}MobileNet V3 ImageNet weights for alpha "
                              f"{' and '.join(map(str, published))} only, got alpha={self.alpha!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs!r}, {self.batch_size!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if int(self.translate) != self.translate or not 0 <= self.translate < self.resolution // 2:
            raise ConfigError(f"translate must be an integer number of pixels in [0, resolution/2), "
                              f"got {self.translate!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"], d["strategy"] = self.arch.value, self.strategy.value
        if not self.minimalistic:
            # Only when set: V1/V2 records, resume checks and sweep ids read as before V3 existed.
            del d["minimalistic"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def replace(self, **kw) -> "TrainConfig":
        return replace(self, **kw)
