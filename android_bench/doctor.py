"""Check a target before benchmarking it: runtimes, numpy, XNNPACK's int8 path, CPU, governor, heat.

    python -m android_bench doctor                          # this machine, this Python
    python -m android_bench doctor --target ssh://pi@raspberrypi --model build/int8.tflite
    python -m android_bench doctor --json

Prints a checklist, one line per item, OK / WARN / FAIL / INFO, each problem
with its fix, then whether int8 beats float32 there: measured on the probe
models, with what the facts suggest and why beside it. An emulated target
(pi-emu) gets no speed verdict: its timings are qemu's. Exits 1 when a FAIL
would stop ``python -m android_bench run``.

How it looks, on any ``Target`` (local, ssh, and the others ``parse_target``
knows), through the target's shell and nothing else:

1. the machine: ``uname -m``, ``/proc/cpuinfo``, cpufreq governors, thermal
   zones, ``vcgencmd`` and ``getprop`` where present, read by one shell command,
   so a phone without Python is still examined;
2. the target's Python (``--python``): when it runs, the device-side doctor
   (``android_bench.device.doctor``) is copied with two probe models into a
   temporary folder and tries numpy and each runtime in a child process of its
   own, building an interpreter on each probe and timing it (1 thread). On an
   emulated Pi with a venv per runtime, it runs once per venv, as ``run`` does.

The probes are the float32 and the full-int8 model of the default recipe's
architecture (``train/config.py``; untrained, calibrated on noise), converted
here once by ``quantize.convert`` as ``make export`` would and cached under
~/.cache/mobilenet-deploy: the int8/float32 ratio depends on the model's size
(a model a quarter of this one's size measured about 1.0x where this one
measured 1.6x, tflite-runtime 2.14 on the project's machine), so the probe is
the model the project builds. Whether XNNPACK handles int8 is read from the
graph the runtime built: which ops its default delegate replaced (see the
device-side module). ``--model`` adds your own .tflite files to the same check.
"""
from __future__ import annotations

import json
import os
import shlex
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from android_bench.config import Runtime
from android_bench.device import doctor as device
from android_bench.device.evaluate import INSTALL, NO_RUNTIME_HINT
from android_bench.device.runner import DEVICE_FILES
from android_bench.int8_verdict import PROBE, coverage, int8_xnnpack, probe, verdict, version_tuple
from android_bench.targets import Session, Target, TargetError
from imagedata.fashion_mnist import default_cache_dir
from quantize import files

OK, WARN, FAIL, INFO = "OK", "WARN", "FAIL", "INFO"
REPO = Path(__file__).resolve().parents[1]
DOCTOR_FILES = (*DEVICE_FILES, "android_bench/device/doctor.py")   # the runner's files time the probes
CACHE = default_cache_dir()
PROBE_FORMAT = 2          # bump when the probe models change
PROBE_CLASSES = 10
HOT_C = 80.0              # °C: a Pi 4/5 starts throttling between 80 and 85 °C, phones earlier
NUMPY_FIX = ("pip install 'numpy<2' (tflite-runtime 2.14 is built against numpy 1.x and is its last release), "
             "or pip install ai-edge-litert (built for numpy 2; `run --runtime auto` prefers it)")
GOVERNOR_FIX = ("echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor "
                "(Android: needs root; otherwise keep the screen on and warm up longer)")
# One shell command for the machine facts: POSIX sh, also Android's toybox/mksh.
SHELL_FACTS = r"""
echo @@machine; uname -m
echo @@cpuinfo; cat /proc/cpuinfo 2>/dev/null
echo @@governor; cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor 2>/dev/null
echo @@thermal; for z in /sys/class/thermal/thermal_zone*; do t=$(cat "$z/temp" 2>/dev/null) && echo "$(cat "$z/type" 2>/dev/null) $t"; done
echo @@vcgencmd; if command -v vcgencmd >/dev/null 2>&1; then vcgencmd measure_temp; vcgencmd get_throttled; fi
echo @@getprop; if command -v getprop >/dev/null 2>&1; then echo "model=$(getprop ro.product.model)"; echo "android=$(getprop ro.build.version.release)"; echo "soc=$(getprop ro.soc.model)"; fi
echo @@os; grep '^PRETTY_NAME=' /etc/os-release 2>/dev/null
echo @@cores; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null
echo @@end
"""


class DoctorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Check:
    name: str
    status: str            # OK, WARN, FAIL or INFO
    message: str
    fix: str | None = None


@dataclass
class Diagnosis:
    target: str
    where: str
    python: str
    checks: list = field(default_factory=list)
    prediction: dict = field(default_factory=dict)     # int8 against float32, for the runtime `run` uses first
    predictions: dict = field(default_factory=dict)    # {runtime: the same}, for every runtime `run` uses
    facts: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    def add(self, *args, **kwargs) -> None:
        self.checks.append(Check(*args, **kwargs))

    def to_dict(self) -> dict:
        return {"artifact": "android_bench doctor", "target": self.target, "where": self.where,
                "python": self.python, "ok": not self.failed, "checks": [asdict(c) for c in self.checks],
                "prediction": self.prediction, "predictions": self.predictions, "facts": self.facts}

    def text(self) -> str:
        out = [f"doctor: {self.target} ({self.where}), Python {self.python}"]
        width = max((len(c.name) for c in self.checks), default=8)
        for c in self.checks:
            out.append(f"  {c.status:<4}  {c.name:<{width}}  {c.message}")
            if c.fix:
                out.append(f"        {'':<{width}}  fix: {c.fix}")
        shown = self.predictions if len(self.predictions) > 1 else {None: self.prediction} if self.prediction else {}
        for name, p in shown.items():
            out.append(f"int8 vs float32{f' ({name})' if name else ''}: {p['verdict']}")
            if p.get("measured") and p.get("predicted"):
                out.append(f"  what the facts suggested: {p['predicted']}")
            out += [f"  - {r}" for r in p["reasons"]]
        out.append("FAIL: fix the items above before `python -m android_bench run`" if self.failed else
                   "no FAIL: `python -m android_bench run` can run here")
        return "\n".join(out)


# ---- the probe models, made here with TensorFlow, cached ----

def probe_models(cache: Path = CACHE) -> dict[str, Path]:
    """{"float32": path, "int8": path}: the default model's architecture, converted once per TF version."""
    folder = Path(cache) / f"doctor-probes-{PROBE_FORMAT}-tf{_tensorflow_version()}"
    paths = {name: folder / f"{PROBE}{name}.tflite" for name in ("float32", "int8")}
    if all(p.is_file() for p in paths.values()):
        return paths
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # before TensorFlow's first import: a quiet converter
    import keras
    import numpy as np

    from quantize.config import QuantizeConfig, Variant
    from quantize.convert import _export_saved_model, convert
    from train.config import TrainConfig
    from train.fit import build_model, preprocessing_for
    config = TrainConfig()
    keras.utils.set_random_seed(0)
    model = build_model(config, PROBE_CLASSES)
    p = preprocessing_for(config)
    noise = np.random.default_rng(0).integers(0, 256, (16, *p.input_shape)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        _export_saved_model(model, Path(tmp) / "saved_model")
        for name in paths:   # the recipe of `make export`: quantize's default settings
            files.write_bytes(paths[name], convert(Path(tmp) / "saved_model", Variant(name), QuantizeConfig(),
                                                   calibration=noise, preprocessing=p))
    return paths


def _tensorflow_version() -> str:
    """Without importing TensorFlow (seconds, and a page of log) when the probes are cached."""
    from importlib import metadata
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise DoctorError("making the probe models needs TensorFlow on this machine: pip install -e . in the repo")


# ---- the machine, through the shell ----

def parse_shell_facts(text: str) -> dict:
    """The output of SHELL_FACTS -> the ``system`` facts the device-side doctor reports."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    if "end" not in sections:
        raise DoctorError("the target's shell did not run the whole fact-finding command "
                          f"(last section: {current!r})")
    machine = next((ln.strip() for ln in sections.get("machine", []) if ln.strip()), "")
    cpuinfo = "\n".join(sections.get("cpuinfo", []))
    props = dict(ln.partition("=")[::2] for ln in sections.get("getprop", []) if "=" in ln)
    os_line = next(iter(sections.get("os", [])), "")
    android = props.get("android")
    cores = next((ln.strip() for ln in sections.get("cores", []) if ln.strip().isdigit()), None)
    return {"machine": machine or None, "cpu": _cpu_name(cpuinfo) or props.get("soc") or None,
            "cores": int(cores) if cores else None, "features": device.cpu_features(cpuinfo, machine),
            "governor": device.parse_governors(sections.get("governor", [])),
            "temperature_c": device.parse_thermal(sections.get("thermal", [])),
            "vcgencmd": device.parse_vcgencmd(sections.get("vcgencmd", [])),
            "os": os_line.partition("=")[2].strip().strip('"') or (f"Android {android}" if android else None),
            "device_model": props.get("model") or None}


def _cpu_name(cpuinfo: str) -> str | None:
    for key in ("model name", "hardware", "cpu model"):
        for line in cpuinfo.splitlines():
            k, _, v = line.partition(":")
            if k.strip().lower() == key and v.strip() and not v.strip().isdigit():
                return v.strip()
    return None


def shell_facts(target: Target) -> dict:
    r = target.shell(SHELL_FACTS, timeout=60)
    return parse_shell_facts(r.stdout.decode("utf-8", "replace"))


def python_version(target: Target) -> tuple[int, str]:
    """(shell status, "3.11.2") of the target's Python; 127: not found."""
    r = target.shell(f"{shlex.quote(target.python)} -c 'import sys; print(sys.version.split()[0])'", timeout=60)
    said = (r.stdout if r.returncode == 0 else r.stderr).decode("utf-8", "replace").strip()
    return r.returncode, said.splitlines()[-1] if said else ""


def device_facts(target: Target, probes: dict[str, Path], models: Sequence[Path] = (), timed: bool = True) -> dict:
    """The device-side doctor's JSON, run in a temporary folder on the target (``timed``: the probes timed too)."""
    names = [Path(m).name for m in models]
    if len(set(names)) != len(names):
        raise DoctorError(f"two --model files with the same name among {names}: rename one")
    payload = {name: REPO / name for name in DOCTOR_FILES}
    probe_names = {f"probes/{PROBE}{name}.tflite": path for name, path in probes.items()}
    probe_names.update({f"models/{Path(m).name}": Path(m) for m in models})
    with Session(target) as session:
        session.upload({**payload, **probe_names})
        args = ["-m", "android_bench.device.doctor", *(["--time"] if timed else []),
                *[a for n in probe_names for a in ("--probe", n)]]
        code, out, err = session.python(args, timeout=900)
    if code != 0:
        raise TargetError(f"the doctor failed on {target.where} (exit {code}): "
                          f"{' | '.join(err[-3:]) or 'no message'}")
    return json.loads(out)


# ---- facts -> checklist and prediction ----

def selected_runtime(runtimes: dict, runtime: str = "auto") -> str | None:
    """The runtime ``run --runtime`` would use: the named one, else the first that imports (the runner's rule)."""
    if runtime != "auto":
        return runtime
    return next((n for n in device.RUNTIMES if n in runtimes and not runtimes[n].get("import_error")), None)


def usable(info: dict | None) -> bool:
    """The runtime imports and runs the probes (a --model it cannot run does not count against it)."""
    probes = [p for p in (info or {}).get("probes") or [] if p["model"].startswith(PROBE)]
    return bool(info) and not info.get("import_error") and not any(p.get("error") for p in probes)


def _runtime_checks(d: Diagnosis, runtimes: dict, used: list, numpy: str | None, marks: dict) -> None:
    """One line per runtime; ``used``: the runtimes `run` would use, ``marks``: how to say so."""
    for name in device.RUNTIMES:
        info = runtimes.get(name) or {}
        label = f"runtime {name}"
        mark = marks.get(name, " (what `run --runtime auto` uses)") if name in used else ""
        if info.get("not_installed"):   # FAIL only when asked for by name (--runtime)
            d.add(label, FAIL if name in used else INFO, f"not installed ({INSTALL[name]})")
            continue
        if info.get("import_error"):
            d.add(label, FAIL if name in used else WARN, f"does not import: {info['import_error']}{mark}",
                  NUMPY_FIX if info.get("numpy_abi_mismatch") else INSTALL[name])
            continue
        broken = [p for p in info.get("probes") or [] if p.get("error") and p["model"].startswith(PROBE)]
        if not broken:
            d.add(label, OK, f"{name} {info.get('version')} builds and runs an interpreter{mark}")
        elif info.get("numpy_abi_mismatch"):
            d.add(label, FAIL if name in used else WARN,
                  f"{name} {info.get('version')} imports but cannot build an interpreter under numpy "
                  f"{info.get('numpy') or numpy}: {broken[0]['error'][:200]}{mark}",
                  "see `numpy 2 vs tflite-runtime` below")
        elif all("find op" in p["error"] for p in broken):
            d.add(label, WARN, f"{name} {info.get('version')} is older than this converter's ops: "
                               f"{broken[0]['error'][:200]}{mark}",
                  f"pip install -U {INSTALL[name].split()[-1]} (or convert with an older TensorFlow)")
        else:
            d.add(label, FAIL if name in used else WARN,
                  f"{name} {info.get('version')} cannot run the probe: {broken[0]['error'][:200]}{mark}",
                  INSTALL[name])
    if not used:
        d.add("runtime", FAIL, "no TFLite runtime imports", NO_RUNTIME_HINT)
    tfl = runtimes.get("tflite_runtime") or {}
    with_numpy = tfl.get("numpy") or numpy
    if tfl.get("numpy_abi_mismatch"):
        d.add("numpy 2 vs tflite-runtime", FAIL if "tflite_runtime" in used else WARN,
              f"tflite-runtime {tfl.get('version')} was built against numpy 1.x and fails under numpy {with_numpy} "
              f"(`_ARRAY_API not found` when an Interpreter is built)", NUMPY_FIX)
    elif tfl.get("version"):
        d.add("numpy 2 vs tflite-runtime", OK, f"tflite-runtime {tfl['version']} with numpy {with_numpy}: compatible")


def _xnnpack_checks(d: Diagnosis, runtimes: dict, used: list, models: Sequence[Path]) -> None:
    for name in used:
        info = runtimes.get(name)
        if not info or info.get("import_error"):
            continue
        tag = "" if len(used) == 1 else f" ({name})"
        int8, f32 = probe(info, "int8"), probe(info, "float32")
        took = int8_xnnpack(info)
        where = f"{name} {info.get('version')}"
        if took:
            d.add(f"XNNPACK int8{tag}", OK, f"{where}: XNNPACK runs the int8 probe ({coverage(int8)}) "
                                            f"and the float32 one ({coverage(f32)})")
        elif took is False:
            left = ", ".join(sorted(set(int8["not_delegated"])))
            d.add(f"XNNPACK int8{tag}", WARN, f"{where}: XNNPACK took {coverage(int8)} of the int8 probe (left to "
                                              f"the builtin kernels: {left}); float32 probe: {coverage(f32)}",
                  "pip install ai-edge-litert: its XNNPACK runs int8 (QS8) ops")
        elif int8 is not None and int8.get("delegated") is None and not int8.get("error"):
            d.add(f"XNNPACK int8{tag}", INFO, f"{where} does not list its graph (_get_ops_details): cannot tell")
        for m in models:
            p = probe(info, Path(m).name) or {}
            timed = f", {p['median_ms']:.3g} ms at 1 thread" if p.get("median_ms") else ""
            if p.get("error"):
                d.add(f"model {Path(m).name}{tag}", WARN, f"{where} cannot run it: {p['error'][:200]}")
            elif p.get("delegated") is not None:
                rest = sorted(set(p["not_delegated"]))
                d.add(f"model {Path(m).name}{tag}", INFO, f"{where}: XNNPACK takes {coverage(p)}" +
                      (f"; builtin kernels run {', '.join(rest)}" if rest else "") + timed)


def _system_checks(d: Diagnosis, system: dict) -> None:
    f = system.get("features") or {}
    yes = lambda k: "yes" if f.get(k) else "no"   # noqa: E731
    if f.get("isa") == "x86" and f.get("listed"):
        d.add("CPU features", OK if f.get("vnni") else WARN,
              f"{system.get('cpu')}: AVX2 {yes('avx2')}, AVX512-VNNI {yes('avx512_vnni')}, "
              f"AVX-VNNI {yes('avx_vnni')}",
              None if f.get("vnni") else "no software fix: expect little from int8 here; a CPU with VNNI "
                                         "(Intel Cascade Lake / Alder Lake or later, AMD Zen 4) speeds it up")
    elif f.get("isa") == "arm" and f.get("listed"):
        d.add("CPU features", OK if f.get("dotprod") else WARN,
              f"{system.get('cpu') or system.get('device_model') or system.get('machine')}: dotprod (asimddp) "
              f"{yes('asimddp')}, i8mm {yes('i8mm')}" +
              (" (differs between cores: only what every core has counts)" if f.get("differs_between_cores") else ""),
              None if f.get("dotprod") else "no software fix: int8 gains less here than on Cortex-A55/A76 "
                                            "and later (Raspberry Pi 5, recent phones)")
    else:
        d.add("CPU features", INFO, f"/proc/cpuinfo lists no feature flags on {system.get('machine')}")
    gov = system.get("governor")
    if gov is None:
        d.add("governor", INFO, "no cpufreq governor readable (a VM or container: the clock is the host's)")
    elif set(gov.split(",")) == {"performance"}:
        d.add("governor", OK, "performance")
    else:
        d.add("governor", WARN, f"{gov}: the clock ramps up during the run, so early runs are slower and "
                                f"latency spreads", GOVERNOR_FIX)
    temps = system.get("temperature_c") or {}
    flags = device.throttled_flags((system.get("vcgencmd") or {}).get("throttled"))
    hottest = max(temps.items(), key=lambda kv: kv[1]) if temps else None
    now = [x for x in flags if x.endswith("now")]
    if hottest and hottest[1] >= HOT_C or now:
        d.add("thermal", WARN, ", ".join(filter(None, [hottest and f"{hottest[0]} {hottest[1]:.0f} °C",
                                                       *now])),
              "let it cool before benchmarking; add a heatsink or fan; an under-voltage flag means a "
              "weak power supply (a Pi 4 needs 5.1 V 3 A)")
    elif hottest or flags:
        d.add("thermal", OK if not flags else WARN,
              ", ".join(filter(None, [hottest and f"hottest {hottest[0]} {hottest[1]:.0f} °C", *flags])),
              "check cooling and the power supply: these happened since boot" if flags else None)
    else:
        d.add("thermal", INFO, "no thermal zone readable")


def diagnose(target: Target, runtime: str = "auto", models: Sequence[Path] = (),
             probes: dict[str, Path] | None = None, python: str | None = None) -> Diagnosis:
    """Run every check on ``target``; never raises for a problem of the target, records it as FAIL.

    ``python`` is the one the user named (``--python``); without it, an emulated Pi is checked
    in each of its runtime venvs, as ``run`` uses them (``bench.per_runtime``).
    """
    from android_bench.bench import per_runtime
    from android_bench.config import BenchConfig
    d = Diagnosis(target.spec, target.where, target.python)
    try:
        target.check_reachable()
    except TargetError as e:
        d.add("target", FAIL, str(e))
        return d
    system = shell_facts(target)
    d.facts["system"] = system
    emulation = target.emulation
    d.add("target", OK, f"reached {target.where}: {system.get('os') or 'unknown OS'}, {system.get('machine')}, "
                        f"{system.get('cores')} cores" + (f"; emulated: {emulation}" if emulation else ""))
    code, version = python_version(target)
    if code != 0:
        from android_bench.adb import AdbTarget
        android = isinstance(target, AdbTarget)
        d.add("python", WARN if android else FAIL,
              f"{target.python} {'was not found' if code == 127 else 'does not run'} on {target.where}"
              f" ({version or code}); only the shell facts were read",
              "install Python 3.9+ (Termux: pkg install python python-numpy) or pass --python" if android else
              "sudo apt install python3 python3-pip, or pass --python /path/to/python3")
    elif version_tuple(version) < (3, 9):
        d.add("python", FAIL, f"Python {version}: the runner needs 3.9 or newer",
              "install Python 3.9+ (Raspberry Pi OS Bullseye or later) or pass --python")
    else:
        d.add("python", OK, f"Python {version} ({target.python})")
        # the interpreters `run` will use; MediaPipe's classify() is timed beside them, not judged
        runs = [(one, config) for one, config, _ in per_runtime(target, BenchConfig(runtime=runtime), python)
                if Runtime(config.runtime) is not Runtime.MEDIAPIPE]
        try:   # timings under emulation are qemu's: not worth the minutes they take
            found = [(one, config.runtime.value, device_facts(one, probes if probes is not None else probe_models(),
                                                              models, timed=emulation is None))
                     for one, config in runs]
        except TargetError as e:
            d.add("device doctor", FAIL, str(e))
            _system_checks(d, system)
            d.prediction = verdict(system, None, None, emulation)
            return d
        facts = found[0][2]
        d.facts.update({k: v for k, v in facts.items() if k != "system"})
        runtimes, marks = facts["runtimes"], {}
        if len(found) > 1:   # one venv per runtime: each runtime's facts from its own venv
            runtimes = dict(runtimes)
            for one, name, venv in found:
                runtimes[name] = venv["runtimes"][name]
                marks[name] = f" (what `run` uses, with {one.python})"
            d.facts["runtimes"] = runtimes
            used = [name for _, name, _ in found]
        else:
            chosen = selected_runtime(runtimes, runtime)
            used = [chosen] if chosen else []
        numpy = facts.get("numpy")
        if numpy:
            d.add("numpy", OK, f"numpy {numpy}")
        else:
            d.add("numpy", FAIL, f"numpy does not import: {facts.get('numpy_error')}",
                  "pip install numpy (with tflite-runtime: pip install 'numpy<2')")
        _runtime_checks(d, runtimes, used, numpy, marks)
        _xnnpack_checks(d, runtimes, used, models)
        for name in used:
            info = runtimes.get(name)
            ok = usable(info)
            d.predictions[name] = verdict(system, name if ok else None, info if ok else None, emulation)
        if used:
            d.prediction = d.predictions[used[0]]
    _system_checks(d, system)
    if not d.prediction:
        d.prediction = verdict(system, None, None, emulation)
    return d
