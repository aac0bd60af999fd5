"""Export configuration: one frozen dataclass, validated on construction."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from android_bench.device.evaluate import DEFAULT_BATCH


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ExportConfig:
    eval_size: int | None = None      # images in eval_pack.npz; None: the whole test split
    batch_size: int = DEFAULT_BATCH   # images per interpreter call when measuring top-1
    num_threads: int | None = None    # interpreter threads; None: the runtime's default
    license: str = "Apache-2.0"       # the models' license, in their standard metadata (SPDX id or text)

    def __post_init__(self):
        if self.eval_size is not None and (int(self.eval_size) != self.eval_size or self.eval_size < 1):
            raise ConfigError(f"eval_size must be an integer >= 1 (or unset for the whole test "
                              f"split), got {self.eval_size!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1 (or unset), got {self.num_threads!r}")
        if not str(self.license).strip():
            raise ConfigError("license must name the models' license (an SPDX id such as Apache-2.0, or its text)")

    def to_dict(self) -> dict:
        return asdict(self)
