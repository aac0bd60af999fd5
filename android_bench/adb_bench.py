"""TFLite's benchmark_model on an Android phone over adb, into the same results as the Python runner.

    python -m android_bench run --target adb --benchmark-binary ~/Downloads/android_aarch64_benchmark_model \\
        --threads 1,2,4 --big-cores --gpu --op-profiling build/manifest.json
    python -m android_bench report

Steps: find the device (``adb devices``) and describe it (``getprop``, /sys);
push the ``benchmark_model`` binary (``--benchmark-binary`` or
``$ANDROID_BENCH_BENCHMARK_MODEL``) and the models into a temporary folder
under /data/local/tmp; run the binary once per (variant, thread count,
delegate) -- ``--num_threads``, ``--use_xnnpack``, ``--use_gpu``,
``--use_nnapi``, ``--warmup_runs``/``--warmup_min_secs``,
``--num_runs``/``--min_secs``, ``--enable_op_profiling`` -- optionally under
``taskset MASK`` to pin it to the big cores; parse each output
(``android_bench.benchmark_model``); remove the folder.

The measurement is benchmark_model's own: init (model load, interpreter,
delegates, allocation), first inference, a warm-up loop, then the timed loop
of ``Invoke()`` calls; per-run times in µs. ``median_ms`` is its median when
the binary prints one (``p5=… median=… p95=…``, recent builds), else its mean
(``latency_statistic`` says which); it prints no p90 (None).

Accuracy needs the eval-pack images and numpy, which benchmark_model has not:
if the device has a Python with a TFLite runtime (``--python``, or a
``python3`` on the adb shell's PATH, e.g. Termux made reachable), the device
runner (``android_bench.device.runner``) measures top-1 and agreement there;
otherwise they are measured here with ``android_bench.device.evaluate`` and
marked ``host-evaluated`` -- the same .tflite files, but another machine's
kernels (results can differ in rare ties, and for GPU/NNAPI rows accuracy is
the CPU's).

Results: ``OUT/results/<adb_SERIAL>__benchmark_model.json``, the document shape
of the Python runner, so ``python -m android_bench report`` merges them.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from android_bench import bench
from android_bench import benchmark_model as bm
from android_bench.adb import AdbSession, AdbTarget, cpu_mask, fingerprint
from android_bench.config import BenchConfig, Xnnpack
from android_bench.device import runner
from android_bench.targets import COMMAND_NOT_FOUND, NOT_EXECUTABLE, TargetError
from quantize import files

RUNTIME = "benchmark_model"
BINARY_ENV = "ANDROID_BENCH_BENCHMARK_MODEL"
DELEGATES = ("xnnpack", "cpu", "gpu", "nnapi")   # cpu: TFLite's builtin kernels, XNNPACK off
PREBUILT_HINT = ("TensorFlow publishes nightly prebuilt binaries: android_aarch64_benchmark_model (arm64-v8a) and "
                 "android_arm_benchmark_model (armeabi-v7a) under https://storage.googleapis.com/"
                 "tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/ (see TFLite's "
                 "'Performance measurement' page)")


@dataclass(frozen=True)
class PhoneOptions:
    """What only the adb target has: the binary, the extra delegates, op profiling and CPU pinning."""
    binary: Path | None = None
    gpu: bool = False
    nnapi: bool = False
    op_profiling: bool = False
    cpu_mask: str | None = None        # taskset's hex mask, e.g. "f0" for CPUs 4-7
    big_cores: bool = False            # pin to the CPUs with the highest max clock
    python: str | None = None          # the device's Python for accuracy; None: python3 if there is one

    def __post_init__(self):
        if self.cpu_mask is not None and self.big_cores:
            raise bench.BenchError("--cpu-mask and --big-cores both pin the benchmark: pass one of them")
        if self.cpu_mask is not None:
            mask = self.cpu_mask.lower().removeprefix("0x")
            if not re.fullmatch(r"[0-9a-f]+", mask) or int(mask, 16) == 0:
                raise bench.BenchError(f"--cpu-mask is taskset's hexadecimal CPU mask such as f0 (CPUs 4-7), "
                                       f"got {self.cpu_mask!r}")
            object.__setattr__(self, "cpu_mask", mask)


def binary_path(given: Path | None) -> Path:
    path = given or (Path(os.environ[BINARY_ENV]) if os.environ.get(BINARY_ENV) else None)
    if path is None:
        raise bench.BenchError(f"the adb target runs TFLite's benchmark_model: pass --benchmark-binary PATH or set "
                               f"{BINARY_ENV}. {PREBUILT_HINT}")
    if not Path(path).is_file():
        raise bench.BenchError(f"benchmark binary '{path}' does not exist. {PREBUILT_HINT}")
    return Path(path)


def delegates(config: BenchConfig, options: PhoneOptions) -> list[str]:
    out = []
    if config.xnnpack in (Xnnpack.ON, Xnnpack.BOTH):
        out.append("xnnpack")
    if config.xnnpack in (Xnnpack.OFF, Xnnpack.BOTH):
        out.append("cpu")
    return out + ["gpu"] * options.gpu + ["nnapi"] * options.nnapi


def benchmark_flags(graph: str, threads: int, delegate: str, config: BenchConfig, op_profiling: bool) -> list[str]:
    """benchmark_model's command line for one measurement. GPU and NNAPI rows run without XNNPACK,
    so the ops those delegates decline fall back to the builtin kernels, not to a second delegate."""
    p = config.protocol
    flags = [f"--graph={graph}", f"--num_threads={threads}",
             f"--use_xnnpack={'true' if delegate == 'xnnpack' else 'false'}"]
    if delegate == "gpu":
        flags.append("--use_gpu=true")
    if delegate == "nnapi":
        flags.append("--use_nnapi=true")
    flags += [f"--warmup_runs={p.warmup_runs}", f"--warmup_min_secs={p.warmup_seconds:g}",
              f"--num_runs={p.runs}", f"--min_secs={p.min_seconds:g}"]
    if op_profiling:
        flags.append("--enable_op_profiling=true")
    return flags


def _bar(total: int, desc: str, unit: str):
    from pipeline.quiet import progress
    return progress(total=total, desc=desc, unit=unit, leave=False)


def _device_sha256(session: AdbSession, names: list[str]) -> dict[str, str]:
    """sha256 of the pushed files on the device (toybox has sha256sum); {} when it cannot tell."""
    r = session.target.shell(session.in_folder("sha256sum " + " ".join(shlex.quote(n) for n in names)))
    if r.returncode != 0:
        return {}
    out = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1]] = parts[0]
    return out


def run_one(session: AdbSession, flags: list[str], mask: str | None, timeout: float | None
            ) -> tuple[int, str]:
    """(exit status, stdout+stderr) of one benchmark_model run in the session's folder."""
    pin = f"taskset {mask} " if mask else ""
    command = session.in_folder(f"{pin}./benchmark_model {' '.join(shlex.quote(f) for f in flags)} 2>&1")
    try:
        r = subprocess.run(session.target.command(command), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:g} s"
    return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


def _failure(code: int, output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "rror" in ln or "failed" in ln.lower()]
    said = " | ".join((errors or lines)[-3:]) or "no output"
    return f"benchmark_model exited {code}: {said}"


def measure(session: AdbSession, models: list[Path], config: BenchConfig, options: PhoneOptions,
            mask: str | None, abi: str | None) -> list[dict[str, Any]]:
    """One row per (model, threads, delegate), latency fields from benchmark_model's output."""
    jobs = [(m, t, d) for m in models for t in config.threads for d in delegates(config, options)]
    rows = []
    bar = _bar(len(jobs), "benchmark_model", "run")
    try:
        for model, threads, delegate in jobs:
            name = runner.variant_name(str(model))
            flags = benchmark_flags(f"{session.folder}/models/{model.name}", threads, delegate, config,
                                    options.op_profiling)
            code, output = run_one(session, flags, mask, config.job_timeout or 1800)
            if code in (COMMAND_NOT_FOUND, NOT_EXECUTABLE) or re.search(
                    r"not executable|Exec format error|cannot execute|No such file or directory.*benchmark_model",
                    output):
                raise TargetError(f"the benchmark binary cannot run on {session.target.where} (ABI {abi}): "
                                  f"{_failure(code, output)}. Use the build for the device's ABI -- "
                                  f"{PREBUILT_HINT}")
            row: dict[str, Any] = {"variant": name, "file": model.name, "size_bytes": model.stat().st_size,
                                   "threads": threads, "delegate": delegate, "xnnpack": delegate == "xnnpack",
                                   "command": f"{'taskset ' + mask + ' ' if mask else ''}benchmark_model "
                                              + " ".join(flags),
                                   "log": [ln for ln in output.splitlines() if ln.strip()][-10:]}
            try:
                parsed = bm.parse(output)
            except bm.BenchmarkOutputError as e:
                parsed = None
                row["error"] = _failure(code, output) if code != 0 else f"unreadable benchmark_model output: {e}"
            if parsed is not None:
                row.update(bm.to_row(parsed), benchmark={k: v for k, v in parsed.items()
                                                         if k not in ("op_profile", "init_profile")},
                           op_profile=parsed.get("op_profile"), error=None if code == 0 else _failure(code, output))
            rows.append(row)
            where = f"{name} threads={threads} {delegate}"
            bar.write(f"  {where}: FAILED: {row['error']}" if row.get("error") else
                      f"  {where}: {row['latency_statistic']} {row['median_ms']:.3f} ms ({row['runs']} runs)",
                      file=sys.stderr)
            bar.update(1)
    finally:
        bar.close()
    return rows


def _device_accuracy(session: AdbSession, models: list[Path], eval_pack: Path, config: BenchConfig,
                     on_line: Callable[[str], None]) -> tuple[dict[str, dict], dict[str, list], dict]:
    """Top-1 by the device runner on the device's own Python; TargetError when it cannot run."""
    bench._check(session)
    session.upload({**bench.device_files(), bench.EVAL_PACK: eval_pack})
    code, out_text, err = session.python(["-m", "android_bench.device.runner", "--check",
                                          "--runtime", config.runtime.value])
    if code != 0:
        raise TargetError(f"{session.target.python} on {session.target.where} cannot run the device runner: "
                          f"{bench._error_text(err)}")
    environment = json.loads(out_text)
    # Latency is benchmark_model's: the runner's own latency jobs are cut to one run.
    quick = BenchConfig(threads=(1,), runtime=config.runtime, eval_images=config.eval_images,
                        reference=config.reference, batch_size=config.batch_size,
                        protocol={"warmup_runs": 0, "warmup_seconds": 0.0, "runs": 1, "min_seconds": 0.0})
    argv = ["-m", "android_bench.device.runner", *quick.runner_args(), "--out", "accuracy.json",
            f"--eval-pack={bench.EVAL_PACK}", *[f"models/{m.name}" for m in models]]
    code, _, err = session.python(argv, on_line=on_line, timeout=None)
    if code not in (0, runner.EXIT_FAILED_VARIANTS):
        raise TargetError(f"the device runner failed on {session.target.where} (exit {code}): "
                          f"{bench._error_text(err)}")
    doc = json.loads(session.read("accuracy.json"))
    by_variant = {r["variant"]: {k: r.get(k) for k in ("top1", "per_class_top1", "images", "agreement",
                                                          "reference")} | {"accuracy_error": r.get("error")}
                  for r in doc["results"]}
    source = {"where": "device", "python": environment["python"], "numpy": environment["numpy"],
              "runtime": environment["runtime"], "runtime_version": environment["runtime_version"]}
    return by_variant, doc.get("predictions", {}), source


def host_accuracy(models: list[Path], eval_pack: Path, config: BenchConfig
                  ) -> tuple[dict[str, dict], dict[str, list], dict]:
    """Top-1 and agreement measured here with android_bench.device.evaluate (batched)."""
    import numpy as np

    from android_bench.device.evaluate import Classifier, EvaluationError, agreement, evaluate
    from pipeline.quiet import progress as bar
    with np.load(eval_pack) as pack:
        x, y, labels = pack["x"], pack["y"], [str(v) for v in pack["labels"]]
    if config.eval_images is not None:
        x, y = x[:config.eval_images], y[:config.eval_images]
    results, predictions, runtime = {}, {}, {}

    def progress(**kw):
        return bar(leave=False, **kw)

    for model in models:
        name = runner.variant_name(str(model))
        try:
            clf = Classifier(str(model), batch_size=config.batch_size,
                             runtime=None if config.runtime.value == "auto" else config.runtime.value)
            result = evaluate(clf, x, y, labels, progress=progress)
        except EvaluationError as e:
            results[name] = {"accuracy_error": str(e)}
            continue
        runtime = clf.runtime
        predictions[name] = result.predictions
        results[name] = {"top1": result.top1, "per_class_top1": result.per_class_top1, "images": result.images,
                         "accuracy_error": None}
    reference = predictions.get(config.reference)
    for name, res in results.items():
        ok = reference is not None and name in predictions
        res["agreement"] = agreement(predictions[name], reference) if ok else None
        res["reference"] = config.reference if ok else None
    source = {"where": "host-evaluated", "host": socket.gethostname(), "runtime": runtime.get("name"),
              "runtime_version": runtime.get("version")}
    return results, {n: [int(v) for v in p] for n, p in predictions.items()}, source


def run(config: BenchConfig, target: AdbTarget, models: Sequence[Path], eval_pack: Path | None, out: Path,
        options: PhoneOptions, on_line: Callable[[str], None] | None = None) -> bench.BenchRun:
    """Benchmark ``models`` with benchmark_model on the phone; writes OUT/results/<adb_SERIAL>__benchmark_model.json."""
    models = bench.resolve_models(models)
    binary = binary_path(options.binary)
    bench.check_eval_pack(eval_pack)
    on_line = on_line or (lambda line: print(line, file=sys.stderr))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    target = target.resolved()
    props, info = target.getprop(), target.cpu_info()
    mask = options.cpu_mask or (cpu_mask(target.big_cores(info)) if options.big_cores else None)
    binary_sha = files.sha256(binary)
    runtime = {"name": RUNTIME, "version": f"sha256:{binary_sha[:12]}"}
    fp = fingerprint(target, props, info, runtime)
    on_line(f"{target.spec}: {fp['hostname']}, {fp['soc']}, {fp['abi']}, {fp['os']}, {fp['cores']} cores"
            + (f", pinned to CPUs {mask} (taskset)" if mask else ""))
    pinned = bin(int(mask, 16)).count("1") if mask else None
    if pinned and max(config.threads) > pinned:   # threads then share cores: latency says little
        on_line(f"warning: {max(config.threads)} threads on {pinned} pinned CPU(s) (mask {mask}): threads beyond "
                f"the pinned CPUs time-share them")
    accuracy: dict[str, dict] = {}
    predictions: dict[str, list] = {}
    source: dict[str, Any] | None = None
    device_python_note = None
    with AdbSession(target) as session:
        payload = {"benchmark_model": binary, **{f"models/{m.name}": m for m in models}}
        bar = _bar(len(payload), f"adb push to {target.serial}", "file")
        try:
            session.upload(payload, on_file=lambda name: bar.update(1))
        finally:
            bar.close()
        r = target.shell(session.in_folder("chmod 755 benchmark_model"))
        if r.returncode != 0:
            raise TargetError(f"chmod on {target.where} failed: {r.stderr.decode(errors='replace').strip()}")
        on_device = _device_sha256(session, [f"models/{m.name}" for m in models])
        rows = measure(session, models, config, options, mask, fp["abi"])
        if eval_pack is not None:
            use_python = options.python is not None or target.shell("command -v python3").returncode == 0
            if use_python:
                try:
                    accuracy, predictions, source = _device_accuracy(session, models, Path(eval_pack), config,
                                                                     on_line)
                except TargetError as e:
                    if options.python is not None:   # asked for: its failure is the user's to see
                        raise
                    device_python_note = f"python3 on the device cannot measure accuracy ({e})"
                    on_line(f"{device_python_note}; measuring it on this host instead")
    if eval_pack is not None and source is None:
        accuracy, predictions, source = host_accuracy(models, Path(eval_pack), config)
        if device_python_note:
            source["note"] = device_python_note
    host_models = {m.name: {"path": str(m), "sha256": files.sha256(m)} for m in models}
    for row in rows:
        row.update(target=target.spec, runtime=RUNTIME, runtime_version=runtime["version"],
                   sha256=host_models[row["file"]]["sha256"])
        device_sha = on_device.get(f"models/{row['file']}")
        if device_sha and device_sha != row["sha256"]:
            row["error"] = f"the file on the device has sha256 {device_sha[:12]}..., here {row['sha256'][:12]}..."
        acc = accuracy.get(row["variant"], {})
        for key in ("top1", "per_class_top1", "images", "agreement", "reference"):
            row[key] = acc.get(key)
        row["accuracy_source"] = source["where"] if source and acc.get("top1") is not None else None
        if acc.get("accuracy_error") and not row.get("error"):
            row["error"] = f"accuracy: {acc['accuracy_error']}"
        row.setdefault("error", None)
    doc = {"format": runner.FORMAT, "artifact": "android_bench results", "target": target.spec,
           "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "environment": {"runtime": RUNTIME, "runtime_version": runtime["version"],
                           "benchmark_binary": {"path": str(binary), "sha256": binary_sha,
                                                "size_bytes": binary.stat().st_size},
                           "cpu_mask": mask},
           "fingerprint": fp, "protocol": config.protocol.to_dict(),
           "settings": {"threads": list(config.threads), "delegates": delegates(config, options),
                        "op_profiling": options.op_profiling, "cpu_mask": mask, "big_cores": options.big_cores,
                        "eval_images": config.eval_images, "reference": config.reference,
                        "eval_pack": Path(eval_pack).name if eval_pack is not None else None},
           "accuracy": source, "results": rows, "predictions": predictions,
           "host": {"config": config.to_dict(), "models": host_models,
                    "eval_pack": ({"path": str(eval_pack), "sha256": files.sha256(eval_pack)}
                                  if eval_pack is not None else None)}}
    path = Path(out) / bench.RESULTS / f"{target.slug()}__{RUNTIME}.json"
    files.write_json(path, doc)
    failed = sorted({r["variant"] for r in rows if r.get("error")})
    return bench.BenchRun(path, doc, failed)
