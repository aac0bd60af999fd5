"""Run the device runner on a target and keep its results on the host.

    python -m android_bench run --target local build/manifest.json
    python -m android_bench run --target ssh://pi@raspberrypi --threads 1,2,4 build/*.tflite

Copies the runner's files (``runner.DEVICE_FILES``: numpy, an interpreter and
the standard library are all they need), the models and the eval pack into a
temporary folder on the target, checks that the target's Python can run them
(``runner --check``), runs them, reads the results back and removes the
folder. The results go to ``OUT/results/<target>__<runtime>.json`` (with
``__xnnpack-off`` or ``__xnnpack-both`` appended unless XNNPACK is on), one file
per target, runtime and XNNPACK setting, replaced by the next run of the same; ``python -m
android_bench report`` merges whatever is there. With ``--runtime auto`` a second run measures
MediaPipe Tasks' ``classify()`` (``<target>__mediapipe.json``) where the target has mediapipe,
and says it skipped it where it has not.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from android_bench.config import BenchConfig, Runtime
from android_bench.device import runner
from android_bench.targets import Session, Target, TargetError
from pipeline import publish
from quantize import files

RESULTS = "results"
EVAL_PACK = "eval_pack.npz"
MANIFEST = "manifest.json"
REPO = Path(__file__).resolve().parents[1]


class BenchError(ValueError):
    pass


@dataclass(frozen=True)
class BenchRun:
    path: Path | None     # the results file written (None when skipped)
    doc: dict | None      # its content
    failed: list          # variants with an error on the target
    skipped: str | None = None   # why an optional run did not happen (MediaPipe not installed there)


def device_files() -> dict[str, Path]:
    out = {name: REPO / name for name in runner.DEVICE_FILES}
    missing = [str(p) for p in out.values() if not p.is_file()]
    if missing:
        raise BenchError(f"the device runner's files are missing: {', '.join(missing)}")
    return out


def resolve_models(paths: Sequence[Path]) -> list[Path]:
    """.tflite files as given, a manifest.json as the variants it lists; names must be distinct."""
    from export import verify
    models: list[Path] = []
    for path in map(Path, paths):
        try:
            if path.name == MANIFEST or path.suffix == ".json":
                if not path.is_file() and not publish.leftovers(path.parent, "export"):
                    raise BenchError(f"'{path}' does not exist: export first (make export), or pass .tflite files")
                manifest = verify.manifest(path, pack=False)   # the eval pack: check_eval_pack
                models += [path.parent / v["file"] for v in manifest["variants"]]
            elif ".partial" in path.name:
                continue   # an interrupted write of export (quantize.files.atomic_path)
            else:
                verify.beside(path)   # a .tflite that a manifest beside it lists must be the one it measured
                models.append(path)
        except verify.VerifyError as e:
            raise BenchError(str(e)) from None
    if not models:
        raise BenchError("no models to benchmark: pass .tflite files or a manifest.json")
    missing = [str(m) for m in models if not m.is_file()]
    if missing:
        raise BenchError(f"no such model file: {', '.join(missing)}")
    names = [runner.variant_name(str(m)) for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BenchError(f"two models named {', '.join(dupes)}: variants are told apart by file name, "
                         f"got {[str(m) for m in models]}")
    return models


def check_eval_pack(eval_pack: Path | None) -> None:
    """On the host, before anything is copied: the eval pack exists and is one (its arrays), and
    is the one the manifest beside it measured (size, sha256, labels, images)."""
    if eval_pack is None:
        return
    from android_bench.device.measure import ProtocolError, read_eval_pack
    from export import verify
    eval_pack = Path(eval_pack)
    if not eval_pack.is_file():
        raise BenchError(f"eval pack '{eval_pack}' does not exist: export writes it (make export), "
                         f"or pass --no-accuracy for latency only")
    manifest = eval_pack.parent / MANIFEST
    try:
        doc = verify.read(manifest) if manifest.is_file() else None
        if doc is not None and doc["eval_pack"].get("file") == eval_pack.name:
            verify.eval_pack(eval_pack, doc, manifest)
        else:
            read_eval_pack(str(eval_pack))
    except (verify.VerifyError, ProtocolError) as e:
        raise BenchError(str(e)) from None


def _check(session: Session) -> dict:
    """The target's Python, numpy and runtime, or a TargetError saying what to install."""
    target = session.target
    code, out, err = session.python(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    if code != 0:
        raise TargetError(f"{target.python} on {target.where} does not run: {(err or ['no message'])[-1]}")
    version = tuple(int(v) for v in out.strip().split("."))
    if version < (3, 9):
        raise TargetError(f"{target.python} on {target.where} is Python {out.strip()}; the runner needs 3.9 "
                          f"or newer (Raspberry Pi OS Bullseye or later), or pass --python")
    return version


def per_runtime(target: Target, config: BenchConfig, python: str | None = None
                ) -> list[tuple[Target, BenchConfig, bool]]:
    """The runs of one `run --target`, each (target, config, optional): one per runtime venv of a
    pi-emu root file system (``ChrootTarget.venvs``) when --runtime is auto (or that runtime's
    venv when one is named) and no --python is given; otherwise (target, config), and with
    --runtime auto also MediaPipe's app-level run, optional: skipped where mediapipe is not installed."""
    venvs = getattr(target, "venvs", ())
    if python or not venvs:
        app = [(target, replace(config, runtime=Runtime.MEDIAPIPE), True)] if config.runtime is Runtime.AUTO else []
        return [(target, config, False), *app]
    wanted = [name for name, _ in venvs] if config.runtime is Runtime.AUTO else [config.runtime.value]
    # Under auto, MediaPipe's venv is optional: its aarch64 build cannot run on every ARM CPU (the
    # runner says why); asked for by name, it must run.
    auto = config.runtime is Runtime.AUTO
    return [(target.with_runtime(name), replace(config, runtime=name), auto and name == Runtime.MEDIAPIPE.value)
            for name in wanted]


def run(config: BenchConfig, target: Target, models: Sequence[Path], eval_pack: Path | None, out: Path,
        on_line: Callable[[str], None] | None = None, optional: bool = False) -> BenchRun:
    """Benchmark ``models`` on ``target``; writes OUT/results/<target>__<runtime>.json.

    ``optional``: a target without the runtime is skipped (``BenchRun.skipped`` says why), not an error."""
    models = resolve_models(models)
    check_eval_pack(eval_pack)
    payload = {**device_files(), **{f"models/{m.name}": m for m in models}}
    if eval_pack is not None:
        payload[EVAL_PACK] = Path(eval_pack)
    on_line = on_line or (lambda line: None)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with Session(target) as session:
        _check(session)
        session.upload(payload)
        code, out_text, err = session.python(["-m", "android_bench.device.runner", "--check",
                                              "--runtime", config.runtime.value])
        if code == runner.EXIT_ENVIRONMENT and optional:
            return BenchRun(None, None, [], skipped=f"{config.runtime.value} on {target.where}: {_error_text(err)}")
        if code == runner.EXIT_ENVIRONMENT:
            raise TargetError(f"on {target.where}: {_error_text(err)}")
        if code != 0:
            raise TargetError(f"the runner does not start on {target.where} with {target.python}: "
                              f"{_error_text(err)}")
        environment = json.loads(out_text)
        on_line(f"{target.where}: Python {environment['python']}, numpy {environment['numpy']}, "
                f"{environment['runtime']} {environment['runtime_version']}")
        argv = ["-m", "android_bench.device.runner", *config.runner_args(), "--out", "results.json",
                *([f"--eval-pack={EVAL_PACK}"] if eval_pack is not None else []),
                *[f"models/{m.name}" for m in models]]
        code, _, err = session.python(argv, on_line=on_line, timeout=None)
        if code not in (0, runner.EXIT_FAILED_VARIANTS):
            raise TargetError(f"the runner failed on {target.where} (exit {code}): {_error_text(err)}")
        doc = json.loads(session.read("results.json"))
    doc["target"] = target.spec
    doc["emulation"] = target.emulation   # not None: the latencies are of an emulator, not of the CPU
    doc["host"] = {"started": started, "config": config.to_dict(), "python": target.python,
                   "models": {m.name: {"path": str(m), "sha256": files.sha256(m)} for m in models},
                   "eval_pack": ({"path": str(eval_pack), "sha256": files.sha256(eval_pack)}
                                 if eval_pack is not None else None)}
    for row in doc["results"]:
        row["target"] = target.spec
        host_sha = doc["host"]["models"].get(row["file"], {}).get("sha256")
        if row.get("sha256") and host_sha and row["sha256"] != host_sha:   # copied wrong or changed meanwhile
            row["error"] = f"the file on the target has sha256 {row['sha256'][:12]}..., here {host_sha[:12]}..."
    # One file per target, runtime and XNNPACK setting: a later run of the same three replaces it.
    xnnpack = "" if config.xnnpack.value == "on" else f"__xnnpack-{config.xnnpack.value}"
    path = Path(out) / RESULTS / f"{target.slug()}__{environment['runtime']}{xnnpack}.json"
    files.write_json(path, doc)
    failed = sorted({r["variant"] for r in doc["results"] if r.get("error")})
    return BenchRun(path, doc, failed)


def _error_text(lines: list[str]) -> str:
    """The runner's own "error: ..." line, else the end of what it printed (a traceback)."""
    errors = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
    if errors:
        return errors[-1]
    return " | ".join(ln.strip() for ln in lines[-3:] if ln.strip()) or "no message"
