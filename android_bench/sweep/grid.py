"""The sweep's grid: a TOML file read into one frozen, validated ``SweepConfig``.

    [grid]                       # every combination is one configuration
    arch = ["v1", "v2", "v3-small", "v3-large"]
    alpha = [0.35, 0.5]
    resolution = [32, 48]

    [train]                      # the same for every configuration: TrainConfig fields
    epochs = 3

    [quantize]                   # QuantizeConfig fields
    variants = ["float32", "int8"]

    [export]                     # ExportConfig fields
    [bench]                      # target, python, threads, xnnpack, runtime, runs, min_seconds, ...

``[grid]`` takes lists of any ``TrainConfig`` field, ``[train]`` single
values of the others. Every configuration is built (and so validated) when the
file is read: a typo fails before the first minute of training, with the file,
the section and the key in the message.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from android_bench.config import BenchConfig
from android_bench.config import ConfigError as BenchConfigError
from android_bench.device.measure import Protocol, ProtocolError
from export.config import ConfigError as ExportConfigError
from export.config import ExportConfig
from quantize.config import ConfigError as QuantizeConfigError
from quantize.config import QuantizeConfig
from train.config import Arch, ConfigError as TrainConfigError, TrainConfig, Weights

SECTIONS = ("grid", "train", "quantize", "export", "bench")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))
QUANTIZE_KEYS = tuple(f.name for f in fields(QuantizeConfig))
EXPORT_KEYS = tuple(f.name for f in fields(ExportConfig))
PROTOCOL_KEYS = tuple(f.name for f in fields(Protocol))
BENCH_KEYS = ("target", "python", *(f.name for f in fields(BenchConfig) if f.name != "protocol"),
              *PROTOCOL_KEYS)
# Short names in a configuration's folder name: v1-a0.35-r32-<hash>.
SHORT = {"alpha": "a", "resolution": "r", "epochs": "e", "output_stride": "os", "batch_size": "b",
         "learning_rate": "lr", "dropout": "d", "seed": "s", "minimalistic": "min"}
CHOICES = {"arch": [a.value for a in Arch], "weights": [w.value for w in Weights]}


class GridError(ValueError):
    pass


@dataclass(frozen=True)
class Configuration:
    """One point of the grid: the model to train, named for its folder."""
    train: TrainConfig
    varied: tuple           # ((key, value), ...) of the grid keys, in the file's order

    @property
    def name(self) -> str:
        """The grid values, short: v1-a0.35-r32."""
        parts = (str(v) if k == "arch" else f"{SHORT.get(k, k)}{_fmt(v)}" for k, v in self.varied)
        return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p)[-24:] for p in parts)   # a folder name

    @property
    def id(self) -> str:
        """The name plus the first 8 hex digits of the training config's sha256: the folder is
        the model; what later stages did to it is checked by their own keys (stages.py)."""
        digest = hashlib.sha256(json.dumps(self.train.to_dict(), sort_keys=True).encode()).hexdigest()
        return f"{self.name}-{digest[:8]}" if self.name else digest[:8]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={_fmt(v)}" for k, v in self.varied) or "default"


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class SweepConfig:
    grid: tuple                                 # ((training setting, (values...)), ...); see sweep.toml
    train: dict = field(default_factory=dict)   # fixed TrainConfig fields
    quantize: QuantizeConfig = field(default_factory=lambda: QuantizeConfig(variants=("float32", "int8")))
    export: ExportConfig = field(default_factory=ExportConfig)
    bench: BenchConfig = field(default_factory=lambda: BenchConfig(threads=(1,)))
    target: str = "local"
    python: str | None = None                   # the target's Python; None: the target's default
    source: str = "<defaults>"                  # the file it came from, for messages

    def __post_init__(self):
        seen = set()
        for key, values in self.grid:
            if key not in TRAIN_KEYS:
                raise GridError(f"{self.source}: unknown key '{key}' in [grid]; it takes lists of the "
                                f"training settings {', '.join(TRAIN_KEYS)}")
            if key in seen:
                raise GridError(f"{self.source}: '{key}' appears twice in [grid]")
            seen.add(key)
            if not isinstance(values, (list, tuple)) or not values:
                raise GridError(f"{self.source}: [grid] {key} must be a non-empty list such as "
                                f"{key} = [{_example(key)}], got {values!r}")
            if len(set(map(repr, values))) != len(values):
                raise GridError(f"{self.source}: [grid] {key} lists a value twice: {list(values)!r}")
            if key in CHOICES:
                bad = [v for v in values if v not in CHOICES[key]]
                if bad:
                    raise GridError(f"{self.source}: [grid] {key}: {bad[0]!r} is not one of "
                                    f"{', '.join(CHOICES[key])}")
        both = sorted(seen & set(self.train))
        if both:
            raise GridError(f"{self.source}: {', '.join(both)} is in both [grid] and [train]; keep it in one")
        unknown = sorted(set(self.train) - set(TRAIN_KEYS))
        if unknown:
            raise GridError(f"{self.source}: unknown key '{unknown[0]}' in [train]; known: {', '.join(TRAIN_KEYS)}")
        self.configurations()   # every combination must be a valid TrainConfig

    def configurations(self) -> list[Configuration]:
        """The cross product of [grid], in the file's order (the last key varies fastest)."""
        keys = [k for k, _ in self.grid]
        out = []
        for combo in itertools.product(*(values for _, values in self.grid)):
            varied = tuple(zip(keys, combo))
            try:
                config = TrainConfig(**_floats({**self.train, **dict(varied)}))
            except (TrainConfigError, TypeError) as e:
                where = ", ".join(f"{k}={_fmt(v)}" for k, v in varied)
                raise GridError(f"{self.source}: the configuration {where} is not valid: {e}") from None
            out.append(Configuration(config, varied))
        ids = [c.id for c in out]
        if len(set(ids)) != len(ids):
            raise GridError(f"{self.source}: two grid points give the same training config "
                            f"({sorted({i for i in ids if ids.count(i) > 1})[0]})")
        return out

    def to_dict(self) -> dict:
        return {"source": self.source, "grid": {k: list(v) for k, v in self.grid}, "train": dict(self.train),
                "quantize": self.quantize.to_dict(), "export": self.export.to_dict(),
                "bench": self.bench.to_dict(), "target": self.target, "python": self.python}


def _floats(settings: dict) -> dict:
    """alpha = 1 in TOML is an int: make it the float the CLI would give, so the hash is the same."""
    defaults = TrainConfig()
    return {k: float(v) if isinstance(getattr(defaults, k, None), float) and type(v) is int else v
            for k, v in settings.items()}


def _example(key: str) -> str:
    return {"arch": '"v1", "v2"', "alpha": "0.35, 0.5", "resolution": "32, 48"}.get(key, "...")


def _check_keys(source: str, section: str, table: dict, known) -> None:
    unknown = [k for k in table if k not in known]
    if unknown:
        raise GridError(f"{source}: unknown key '{unknown[0]}' in [{section}]; known: {', '.join(known)}")


def _csv(value) -> tuple:
    """A list, or a comma-separated string as on the command line ("float32,int8", "1,2")."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


def parse(doc: dict, source: str = "<grid>") -> SweepConfig:
    """A SweepConfig from the parsed TOML; every error names the file, the section and the key."""
    unknown = [k for k in doc if k not in SECTIONS]
    if unknown:
        raise GridError(f"{source}: unknown section [{unknown[0]}]; known: "
                        f"{', '.join(f'[{s}]' for s in SECTIONS)}")
    for name in SECTIONS:
        if name in doc and not isinstance(doc[name], dict):
            raise GridError(f"{source}: '{name}' must be a section [{name}], got {doc[name]!r}")
    grid = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in doc.get("grid", {}).items())
    if not grid:
        raise GridError(f"{source}: [grid] is empty; list at least one training setting, "
                        f"e.g. arch = [\"v1\", \"v2\"]")
    q, e, b = doc.get("quantize", {}), doc.get("export", {}), dict(doc.get("bench", {}))
    _check_keys(source, "quantize", q, QUANTIZE_KEYS)
    _check_keys(source, "export", e, EXPORT_KEYS)
    _check_keys(source, "bench", b, BENCH_KEYS)
    try:
        section = "quantize"
        quantize = QuantizeConfig(**{**q, "variants": _csv(q.get("variants", ("float32", "int8")))})
        section = "export"
        export = ExportConfig(**e)
        section = "bench"
        target, python = b.pop("target", "local"), b.pop("python", None)
        protocol = Protocol(**{k: b.pop(k) for k in PROTOCOL_KEYS if k in b})
        threads = _csv(b.get("threads", (1,)))
        try:
            threads = tuple(int(t) if isinstance(t, str) else t for t in threads)
        except ValueError:
            raise BenchConfigError(f"threads must be integers such as [1, 2, 4], got {b['threads']!r}") from None
        bench = BenchConfig(**{**b, "threads": threads, "protocol": protocol})
    except (QuantizeConfigError, ExportConfigError, BenchConfigError, ProtocolError, TypeError) as err:
        raise GridError(f"{source}: [{section}]: {err}") from None
    return SweepConfig(grid=grid, train=dict(doc.get("train", {})), quantize=quantize, export=export,
                       bench=bench, target=target, python=python, source=source)


def load(path: Path) -> SweepConfig:
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file '{path}' does not exist: pass a TOML file such as the repository's "
                        f"sweep.toml (make sweep SWEEP=path/to/grid.toml)")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"{path} is not valid TOML: {e}") from None
    return parse(doc, str(path))
