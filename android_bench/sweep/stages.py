"""Train, quantize, export and benchmark every configuration of a grid, reusing what is done.

    python -m android_bench sweep sweep.toml --out build/sweep

Each configuration gets a folder ``OUT/<config-id>/`` laid out like ``build/``:
``model.keras``, ``model.json`` and ``train/`` (checkpoints) from ``train.fit``;
``quantize/`` from ``quantize.convert``; ``<variant>.tflite``, ``eval_pack.npz``
and ``manifest.json`` from ``export.bundle``; ``bench/results/`` from
``android_bench.bench`` -- the same functions ``make export`` and ``make bench``
run, called in one process so that a configuration's data is decoded once.

Caching. Each stage has a key: the sha256 of its settings, the key of the
stage before it, and the source files it runs (the files the Makefile's rule
for that stage depends on; for training also the data). A stage is skipped
when ``done/<stage>.json`` holds its current key and its output is there;
otherwise it runs, and so do the stages after it, whose keys contain its key.
The marker is written atomically, last, so an interrupted stage is simply not
done. Training continues from ``train/last.keras`` (``fit --resume``) when the
interrupted training had the same key; a benchmark with failed variants is not
marked done and is retried by the next run.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from android_bench.device import runner
from android_bench.sweep.grid import Configuration, SweepConfig
from quantize import files

STAGES = ("train", "quantize", "export", "bench")
DONE = "done"
REPO = Path(__file__).resolve().parents[2]
# The code each stage runs, as the Makefile's SRC_* lists; a change redoes that stage and later ones.
CODE = {
    "train": ("imagedata/*.py", "train/*.py", "pipeline/publish.py"),
    "quantize": ("imagedata/*.py", "quantize/*.py", "android_bench/device/evaluate.py",   # --max-drop uses it
                 "pipeline/publish.py"),
    "export": ("imagedata/*.py", "export/*.py", "android_bench/device/evaluate.py", "android_bench/device/measure.py",
               "pipeline/publish.py",
               "android_bench/device/tflite_metadata.py"),
    "bench": runner.DEVICE_FILES,   # what runs on the target
}


class SweepError(RuntimeError):
    pass


def code_hash(patterns, repo: Path = REPO) -> str:
    digest = hashlib.sha256()
    for path in sorted({p for pattern in patterns for p in repo.glob(pattern) if p.is_file()}):
        digest.update(f"{path.relative_to(repo)}\n".encode())
        digest.update(files.sha256(path).encode())
    return digest.hexdigest()


def data_fingerprint(data: str) -> str:
    """fashion_mnist by name (its loader checks the files' sha256); a folder by its file names and sizes."""
    root = Path(data)
    if data == "fashion_mnist" or not root.is_dir():
        return data
    digest = hashlib.sha256(str(root.resolve()).encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            digest.update(f"{p.relative_to(root)}:{p.stat().st_size}\n".encode())
    return digest.hexdigest()


def _key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def stage_keys(config: SweepConfig, c: Configuration, target_spec: str, target_python: str,
               code: dict[str, str]) -> dict[str, str]:
    """{stage: key}; each key covers the stage's settings, its code and every earlier stage."""
    keys = {"train": _key({"train": c.train.to_dict(), "data": data_fingerprint(c.train.data),
                           "code": code["train"]})}
    keys["quantize"] = _key({"after": keys["train"], "quantize": config.quantize.to_dict(),
                             "code": code["quantize"]})
    keys["export"] = _key({"after": keys["quantize"], "export": config.export.to_dict(), "code": code["export"]})
    keys["bench"] = _key({"after": keys["export"], "bench": config.bench.to_dict(), "target": target_spec,
                          "python": target_python, "code": code["bench"]})
    return keys


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_marker(folder: Path, stage: str) -> dict | None:
    return _read_json(Path(folder) / DONE / f"{stage}.json")


def outputs(folder: Path, stage: str, marker: dict | None = None) -> list[Path]:
    """The files a finished stage leaves; the marker names the benchmark's results file."""
    folder = Path(folder)
    if stage == "train":
        return [folder / "model.keras", folder / "model.json"]
    if stage == "quantize":
        return [folder / "quantize" / "quantize.json"]
    if stage == "export":
        return [folder / "manifest.json", folder / "eval_pack.npz"]
    return [folder / marker["results"]] if marker and marker.get("results") else [folder / "bench" / "missing"]


def is_done(folder: Path, stage: str, key: str) -> bool:
    marker = read_marker(folder, stage)
    return (marker is not None and marker.get("key") == key and not marker.get("failed")
            and all(p.is_file() for p in outputs(folder, stage, marker)))


@dataclass
class Entry:
    """One configuration's state after the run, for the report."""
    configuration: Configuration
    folder: Path
    keys: dict
    ran: list = field(default_factory=list)       # stages run this time
    cached: list = field(default_factory=list)    # stages reused
    error: str | None = None                      # "<stage>: <message>" if a stage failed


class _Datasets:
    """The decoded data of the last (data, preprocessing, seed): configurations are run grouped by it."""

    def __init__(self):
        self._key, self._dataset = None, None

    def get(self, train_config):
        from imagedata.dataset import load_dataset
        from pipeline.quiet import progress

        from train.fit import preprocessing_for
        p = preprocessing_for(train_config)
        key = json.dumps([train_config.data, train_config.seed, p.to_dict()], sort_keys=True)
        if key != self._key:
            self._key, self._dataset = None, None   # free the previous one first
            self._dataset = load_dataset(train_config.data, p, seed=train_config.seed, progress=progress)
            self._key = key
        return self._dataset


def user_errors() -> tuple:
    """The errors a stage raises for a cause outside the code (data, model, target): reported
    for that configuration, and the sweep goes on with the next one."""
    from android_bench.bench import BenchError
    from android_bench.device.evaluate import EvaluationError
    from android_bench.device.measure import ProtocolError
    from android_bench.device.tflite_metadata import MetadataError
    from android_bench.targets import TargetError
    from export.bundle import ExportError
    from imagedata.fashion_mnist import DataUnavailable
    from imagedata.folder import ImageFolderError
    from imagedata.idx import IdxError
    from imagedata.preprocess import PreprocessingError
    from quantize.convert import QuantizeError
    from quantize.source import SourceError
    from pipeline.publish import OutInUse, PublishError
    from train.checkpoint import CheckpointError
    from train.fit import ResumeError
    return (BenchError, EvaluationError, ProtocolError, MetadataError, TargetError, ExportError,
            DataUnavailable, ImageFolderError, IdxError, PreprocessingError, QuantizeError, SourceError,
            ResumeError, ValueError, OutInUse, PublishError, CheckpointError)


def _train(c: Configuration, folder: Path, key: str, datasets: _Datasets, log) -> dict:
    import keras

    from train import fit
    started = folder / DONE / "train-started.json"
    ckpt = folder / fit.CKPT_DIR
    previous = (_read_json(started) or {}).get("key")
    resume = previous == key and (ckpt / "last.keras").is_file() and (ckpt / "state.json").is_file()
    if resume:
        state = json.loads((ckpt / "state.json").read_text())
        log(f"  resuming the interrupted training after epoch {state.get('epochs_done')} of {c.train.epochs}")
    else:
        files.write_json(started, {"key": key, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    keras.backend.clear_session()   # one process trains every configuration
    record = fit.run(c.train, folder, resume=resume, dataset=datasets.get(c.train))
    return {"test_top1": record["test_top1"], "val_top1": record["val_top1"], "epochs": len(record["history"])}


def _quantize(config: SweepConfig, c: Configuration, folder: Path, datasets: _Datasets) -> dict:
    from quantize import convert
    dataset = datasets.get(c.train) if config.quantize.needs_calibration else None
    summary = convert.run(config.quantize, folder / "model.keras", folder / "quantize", dataset=dataset)
    return {"variants": [v["name"] for v in summary["variants"]]}


def _export(config: SweepConfig, c: Configuration, folder: Path, datasets: _Datasets) -> dict:
    from export import bundle
    manifest = bundle.run(config.export, folder / "quantize", folder, dataset=datasets.get(c.train))
    return {"top1": {v["name"]: v["top1"] for v in manifest["variants"]}}


def _bench(config: SweepConfig, folder: Path, target, log) -> dict:
    from android_bench import bench
    result = bench.run(config.bench, target, [folder / bench.MANIFEST], folder / bench.EVAL_PACK,
                       folder / "bench", on_line=lambda line: log(f"  {line}"))
    return {"results": str(result.path.relative_to(folder)), "failed": result.failed}


def run(config: SweepConfig, out: Path, target, remeasure: bool = False,
        log: Callable[[str], None] = print) -> list[Entry]:
    """Run every configuration's missing stages on ``target``; returns one Entry per configuration
    in the grid's order. A configuration whose stage fails is reported and skipped."""
    out = Path(out)
    configurations = config.configurations()
    code = {stage: code_hash(patterns) for stage, patterns in CODE.items()}
    entries = [Entry(c, out / c.id, stage_keys(config, c, target.spec, target.python, code))
               for c in configurations]
    # Grouped by decoded data (the sort is stable): each data set is loaded once.
    order = sorted(entries, key=lambda e: (e.configuration.train.data, e.configuration.train.resolution,
                                           e.configuration.train.channels, e.configuration.train.seed))
    datasets, errors, n = _Datasets(), user_errors(), len(entries)
    for k, entry in enumerate(order, 1):
        c, folder = entry.configuration, entry.folder
        log(f"[{k}/{n}] {c.id} ({c.label})")
        folder.mkdir(parents=True, exist_ok=True)
        described = {"id": c.id, "varied": dict(c.varied), "train": c.train.to_dict(), "sweep": config.to_dict(),
                     "keys": entry.keys}
        if _read_json(folder / "config.json") != described:   # what this folder is, for a reader
            files.write_json(folder / "config.json", described)
        stale = False   # once a stage runs, every later one runs
        for stage in STAGES:
            key = entry.keys[stage]
            if not stale and is_done(folder, stage, key) and not (stage == "bench" and remeasure):
                entry.cached.append(stage)
                log(f"[{k}/{n}] {c.id}: {stage} cached")
                continue
            if not stale:   # this stage and every later one are redone: none may pass for done meanwhile
                for later in STAGES[STAGES.index(stage):]:
                    (folder / DONE / f"{later}.json").unlink(missing_ok=True)
            stale = True
            log(f"[{k}/{n}] {c.id}: {stage} ...")
            t0 = time.perf_counter()
            try:
                if stage == "train":
                    info = _train(c, folder, key, datasets, log)
                elif stage == "quantize":
                    info = _quantize(config, c, folder, datasets)
                elif stage == "export":
                    info = _export(config, c, folder, datasets)
                else:
                    info = _bench(config, folder, target, log)
            except errors as e:
                entry.error = f"{stage}: {e}"
                log(f"[{k}/{n}] {c.id}: {stage} failed: {e}")
                break
            seconds = time.perf_counter() - t0
            files.write_json(folder / DONE / f"{stage}.json",
                             {"stage": stage, "key": key, "seconds": seconds,
                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info})
            entry.ran.append(stage)
            log(f"[{k}/{n}] {c.id}: {stage} done in {seconds:.1f} s")
            if info.get("failed"):
                entry.error = f"bench: {', '.join(info['failed'])} failed on {target.spec} (see {info['results']})"
    return entries
