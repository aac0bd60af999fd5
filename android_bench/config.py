"""Benchmark configuration: one frozen dataclass, validated on construction.

The choices are ``str`` Enums whose values are the device runner's own
(``android_bench.device``), so the host CLI, the runner's argparse and the
recorded settings cannot drift apart (tests/android_bench checks it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from android_bench.device.evaluate import DEFAULT_BATCH
from android_bench.device.measure import Protocol, ProtocolError


class ConfigError(ValueError):
    pass


class Runtime(str, Enum):
    """Which interpreter the runner uses on the target."""
    AUTO = "auto"                      # the first of the three below that imports
    AI_EDGE_LITERT = "ai_edge_litert"  # LiteRT, TFLite's successor
    TFLITE_RUNTIME = "tflite_runtime"  # its last release, 2.14, needs numpy<2 and Python <= 3.11
    TENSORFLOW = "tensorflow"          # tf.lite in a full TensorFlow
    MEDIAPIPE = "mediapipe"            # MediaPipe Tasks' ImageClassifier.classify(): what an app sees, not invoke()


class Xnnpack(str, Enum):
    """The XNNPACK delegate the runtimes apply by default; ``off`` runs TFLite's builtin kernels."""
    ON = "on"
    OFF = "off"
    BOTH = "both"


@dataclass(frozen=True)
class BenchConfig:
    threads: tuple = (1, 2)            # interpreter thread counts to sweep
    xnnpack: Xnnpack = Xnnpack.ON
    runtime: Runtime = Runtime.AUTO
    protocol: Protocol = field(default_factory=Protocol)
    batch_size: int = DEFAULT_BATCH    # images per interpreter call for accuracy
    eval_images: int | None = None     # the first N eval-pack images; None: all of them
    reference: str = "float32"         # the variant agreement compares with
    job_timeout: float | None = None   # seconds before one measurement is killed on the target

    def __post_init__(self):
        object.__setattr__(self, "threads", tuple(self.threads))
        if not self.threads or any(int(t) != t or t < 1 for t in self.threads):
            raise ConfigError(f"threads must be integers >= 1 such as (1, 2, 4), got {self.threads!r}")
        if len(set(self.threads)) != len(self.threads):
            raise ConfigError(f"threads has a count twice: {self.threads!r}")
        try:
            object.__setattr__(self, "xnnpack", Xnnpack(self.xnnpack))
            object.__setattr__(self, "runtime", Runtime(self.runtime))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if not isinstance(self.protocol, Protocol):
            try:
                object.__setattr__(self, "protocol", Protocol(**self.protocol))
            except (TypeError, ProtocolError) as e:
                raise ConfigError(f"protocol: {e}") from None
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.eval_images is not None and (int(self.eval_images) != self.eval_images or self.eval_images < 1):
            raise ConfigError(f"eval_images must be an integer >= 1 (or unset for all), got {self.eval_images!r}")
        if self.job_timeout is not None and not self.job_timeout > 0:
            raise ConfigError(f"job_timeout must be > 0 seconds (or unset), got {self.job_timeout!r}")

    def runner_args(self) -> list[str]:
        """The device runner's command-line options for this configuration."""
        p = self.protocol
        args = ["--threads", ",".join(map(str, self.threads)), "--xnnpack", self.xnnpack.value,
                "--runtime", self.runtime.value, "--warmup-runs", str(p.warmup_runs),
                "--warmup-seconds", repr(p.warmup_seconds), "--runs", str(p.runs),
                "--min-seconds", repr(p.min_seconds), "--batch-size", str(self.batch_size),
                "--reference", self.reference]
        if self.eval_images is not None:
            args += ["--eval-images", str(self.eval_images)]
        if self.job_timeout is not None:
            args += ["--job-timeout", repr(self.job_timeout)]
        return args

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(threads=list(self.threads), xnnpack=self.xnnpack.value, runtime=self.runtime.value)
        return d
