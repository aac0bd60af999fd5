"""The Makefile's knobs, resolved into each stage's configuration, so that settings compare by meaning.

    python -m pipeline.knobs train --out build ALPHA=0.35   # for make: "changed --arch v1 --alpha 0.35 ..."
    python -m pipeline.knobs quantize --out build --json    # the configuration quantize would run with
    python -m pipeline.knobs settings --out build           # every knob in effect, and where it comes from

A knob's value is, in this order:

1. the one given to make (on its command line or in the environment); given empty
   (``make export MAX_DROP=``), the stage's default: that is how a knob goes back to it;
2. else the one the build in OUT was made with, read from the configuration its stage
   recorded in its artifact (``model.json``, ``quantize/quantize.json``, ``manifest.json``);
3. else the stage's default (``train/config.py``, ``quantize/config.py``, ``export/config.py``).

So ``make bench`` after ``make export MAX_DROP=0.5`` keeps the budget, and ``make export
ALPHA=0.5`` (the default, spelled out) trains nothing. Both sides go through the stage's own
frozen config dataclass (``0.50`` and ``0.5`` are one alpha, ``int8,float32`` and
``float32,int8`` one variant list), and a stage is out of date when a knob's resolved value
differs from the recorded one. Only the knobs are compared: a model trained by hand with
``--batch-size 64`` is not retrained by ``make export``; the stage then runs with the knobs
only, so a retrain (a changed knob) goes back to the defaults of the other options.

For make, the output is one line: ``same``, ``changed`` or ``new`` (nothing recorded yet),
then the stage's command-line options, shell-quoted. What changed, and why, goes to stderr.
An invalid value gives ``error <message>`` (make stops with it). Only the standard library
and the config modules are imported, never TensorFlow: make runs this on every call (about
0.1 s). Before .venv exists the export config (which imports numpy) may not import; the
values are then compared as parsed, and the stage validates them itself.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
from dataclasses import MISSING, dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable


class KnobError(ValueError):
    pass


def _text_list(text: str) -> tuple:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _data_key(value: str) -> str:
    """A data folder by where it is (``./imgs`` and ``imgs`` are one); ``fashion_mnist`` by name."""
    return value if value == "fashion_mnist" else os.path.realpath(value)


def _switch(text: str) -> bool:
    """MINIMALISTIC=1: make's spelling of a flag."""
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if text.strip().lower() not in words:
        raise ValueError(text)
    return words[text.strip().lower()]


KINDS = {_switch: "1 or 0", str: "a word", float: "a number", int: "an integer", _text_list: "a comma-separated list"}


@dataclass(frozen=True)
class Knob:
    name: str                                 # the make variable, ALPHA
    field: str                                # the config field it sets, alpha
    option: str                               # the stage CLI's option, --alpha
    kind: Callable[[str], Any] = str          # make's text -> the value the config takes
    key: Callable[[Any], Any] = lambda v: v   # what "the same value" means

    def parse(self, text: str, where: str) -> Any:
        try:
            return self.kind(text)
        except ValueError:
            raise KnobError(f"{self.name}={text!r} ({where}): {self.field} must be {KINDS[self.kind]}") from None


@dataclass(frozen=True)
class Stage:
    name: str
    record: str       # the artifact in OUT whose "config" the stage wrote
    config: str       # "module:Class", the stage's config dataclass
    knobs: tuple

    def config_class(self):
        module, _, cls = self.config.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except ImportError:   # export.config needs numpy, which only .venv may have
            return None


STAGES = {s.name: s for s in (
    Stage("train", "model.json", "train.config:TrainConfig", (
        Knob("ARCH", "arch", "--arch"), Knob("MINIMALISTIC", "minimalistic", "--minimalistic", _switch),
        Knob("ALPHA", "alpha", "--alpha", float),
        Knob("RES", "resolution", "--resolution", int), Knob("EPOCHS", "epochs", "--epochs", int),
        Knob("DATA", "data", "--data", key=_data_key))),
    Stage("quantize", "quantize/quantize.json", "quantize.config:QuantizeConfig", (
        Knob("VARIANTS", "variants", "--variants", _text_list), Knob("IO", "io", "--io"),
        Knob("COLOR", "input_color", "--input-color"),
        Knob("CALIB", "calibration_size", "--calibration-size", int),
        Knob("GRANULARITY", "granularity", "--granularity"), Knob("MAX_DROP", "max_drop", "--max-drop", float))),
    Stage("export", "manifest.json", "export.config:ExportConfig", (
        Knob("EVAL_SIZE", "eval_size", "--eval-size", int),)),
)}
GIVEN, ENVIRONMENT, RESET, DEFAULT = "make command line", "environment", "given empty: the default", "default"


def plain(value: Any) -> Any:
    """A config value as JSON and make see it: Enums by value, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def option_text(value: Any) -> str:
    value = plain(value)
    if isinstance(value, list):
        return ",".join(map(str, value))
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Resolved:
    stage: Stage
    values: dict       # {knob name: the value, canonical}
    sources: dict      # {knob name: where it came from}
    recorded: dict | None   # {knob name: the value the build was made with}, None: no record
    record_path: Path

    @property
    def changes(self) -> list[str]:
        if self.recorded is None:
            return []
        return [k.name for k in self.stage.knobs if k.key(self.values[k.name]) != k.key(self.recorded[k.name])]

    @property
    def status(self) -> str:
        return "new" if self.recorded is None else "changed" if self.changes else "same"

    def args(self) -> list[str]:
        out = []
        for k in self.stage.knobs:
            if k.kind is _switch:   # a flag: the option alone, or nothing
                out += [k.option] if self.values[k.name] else []
            elif self.values[k.name] is not None:
                out += [k.option, option_text(self.values[k.name])]
        return out

    def config(self) -> dict:
        return {k.field: plain(self.values[k.name]) for k in self.stage.knobs}


def _defaults(cls) -> dict:
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _canonical(stage: Stage, cls, values: dict, what: str) -> dict:
    """{knob name: value} through the stage's config dataclass, which validates and normalizes."""
    if cls is None:
        return dict(values)
    try:
        config = cls(**{k.field: values[k.name] for k in stage.knobs})
    except (ValueError, TypeError) as e:
        raise KnobError(f"{what}: {e}") from None
    return {k.name: getattr(config, k.field) for k in stage.knobs}


def resolve(stage: Stage, out: Path, given: dict[str, tuple[str, str]]) -> Resolved:
    """``given``: {knob name: (text, where)} of the knobs make was given, for this stage's knobs."""
    cls = stage.config_class()
    defaults = _defaults(cls) if cls else {}
    record_path = Path(out) / stage.record
    try:
        record = json.loads(record_path.read_text()).get("config")
    except (OSError, ValueError):
        record = None
    recorded = None
    if isinstance(record, dict):
        raw = {k.name: record.get(k.field, defaults.get(k.field)) for k in stage.knobs}
        try:
            recorded = _canonical(stage, cls, raw, f"the settings recorded in {record_path}")
        except KnobError:
            recorded = {k.name: object() for k in stage.knobs}   # unreadable: nothing matches it
    values, sources = {}, {}
    for k in stage.knobs:
        if k.name in given:
            text, where = given[k.name]
            values[k.name] = k.parse(text, where) if text != "" else defaults.get(k.field)
            sources[k.name] = where if text != "" else RESET
        elif recorded is not None:
            values[k.name], sources[k.name] = recorded[k.name], str(record_path)
        else:
            values[k.name], sources[k.name] = defaults.get(k.field), DEFAULT
    shown = ", ".join(f"{n}={given[n][0]}" for n in given) or "the recorded settings"
    values = _canonical(stage, cls, values, shown)
    return Resolved(stage, values, sources, recorded, record_path)


def parse_given(pairs: list[str]) -> dict[str, tuple[str, str]]:
    """``NAME=VALUE`` (make's command line) or ``env:NAME=VALUE`` (make's environment)."""
    known = {k.name for s in STAGES.values() for k in s.knobs}
    out = {}
    for pair in pairs:
        where = GIVEN
        if pair.startswith("env:"):
            pair, where = pair[4:], ENVIRONMENT
        name, sep, value = pair.partition("=")
        if not sep or name not in known:
            raise KnobError(f"expected KNOB=VALUE with KNOB one of {', '.join(sorted(known))}, got {pair!r}")
        out[name] = (value, where)
    return out


def explain(r: Resolved) -> str:
    """Why the stage is out of date: each changed knob, its new value and the recorded one."""
    parts = []
    for k in r.stage.knobs:
        if k.name in r.changes:
            old = option_text(r.recorded[k.name]) if r.recorded[k.name] is not None else "unset"
            new = option_text(r.values[k.name]) if r.values[k.name] is not None else "unset (the default)"
            parts.append(f"{k.name}={new} ({r.sources[k.name]}), {r.record_path} has {k.field} {old}")
    return f"make: the {r.stage.name} stage is out of date: " + "; ".join(parts)


def settings_table(out: Path, given: dict) -> str:
    lines = [f"{'knob':<12} {'value':<24} from"]
    for stage in STAGES.values():
        r = resolve(stage, out, {n: v for n, v in given.items() if n in {k.name for k in stage.knobs}})
        for k in stage.knobs:
            value = "-" if r.values[k.name] is None else option_text(r.values[k.name])
            lines.append(f"{k.name:<12} {value:<24} {r.sources[k.name]}")
    lines.append("A knob given to make wins and is then recorded by its stage's next run; KNOB= (empty) "
                 "goes back to the default.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.knobs", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=[*STAGES, "settings"])
    p.add_argument("--out", type=Path, default=Path("build"))
    p.add_argument("--json", action="store_true", help="print the resolved configuration of the stage's knobs")
    p.add_argument("knobs", nargs="*", metavar="KNOB=VALUE")
    args = p.parse_intermixed_args(argv)
    try:
        given = parse_given(args.knobs)
        if args.stage == "settings":
            print(settings_table(args.out, given))
            return 0
        stage = STAGES[args.stage]
        r = resolve(stage, args.out, {n: v for n, v in given.items() if n in {k.name for k in stage.knobs}})
    except KnobError as e:
        if args.json or args.stage == "settings":
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"error {e}")   # make shows it with $(error)
        return 0
    if args.json:
        print(json.dumps({"stage": stage.name, "status": r.status, "config": r.config(),
                          "sources": r.sources, "changed": r.changes}, indent=1))
        return 0
    if r.status == "changed":
        print(explain(r), file=sys.stderr)
    print(" ".join([r.status, *map(shlex.quote, r.args())]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
