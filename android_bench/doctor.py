"""Check a target before benchmarking it: runtimes, numpy, XNNPACK's int8 path, CPU, governor, heat.

    python -m android_bench doctor                          # this machine, this Python
    python -m android_bench doctor --target ssh://pi@raspberrypi --model build/int8.tflite
    python -m android_bench doctor --json

Prints a checklist, one line per item, OK / WARN / FAIL / INFO, each problem
with its fix, then a prediction of whether int8 will beat float32 there and
why. Exits 1 when a FAIL would stop ``python -m android_bench run``.

How it looks, on any ``Target`` (local, ssh, and the others ``parse_target``
knows), through the target's shell and nothing else:

1. the machine: ``uname -m``, ``/proc/cpuinfo``, cpufreq governors, thermal
   zones, ``vcgencmd`` and ``getprop`` where present, read by one shell command,
   so a phone without Python is still examined;
2. the target's Python (``--python``): when it runs, the device-side doctor
   (``android_bench.device.doctor``) is copied with two probe models into a
   temporary folder and tries numpy and each runtime in a child process of its
   own, building an interpreter on each probe.

The probes are a tiny float32 and a tiny full-int8 model (CONV_2D,
DEPTHWISE_CONV_2D, MEAN, FULLY_CONNECTED: MobileNet's arithmetic), converted
here once with TensorFlow and cached under ~/.cache/mobilenet-deploy. Whether
XNNPACK handles int8 is read from the graph the runtime built: which ops its
default delegate replaced (see the device-side module). ``--model`` adds your
own .tflite files to the same check.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from android_bench.device import doctor as device
from android_bench.device.evaluate import INSTALL, NO_RUNTIME_HINT
from android_bench.targets import Session, Target, TargetError
from imagedata.fashion_mnist import default_cache_dir
from quantize import files

OK, WARN, FAIL, INFO = "OK", "WARN", "FAIL", "INFO"
REPO = Path(__file__).resolve().parents[1]
DOCTOR_FILES = ("android_bench/__init__.py", "android_bench/device/__init__.py",
                "android_bench/device/fingerprint.py", "android_bench/device/doctor.py")
CACHE = default_cache_dir()
PROBE_FORMAT = 1          # bump when the probe models change
PROBE = "doctor_probe_"   # probe file names: doctor_probe_int8.tflite, doctor_probe_float32.tflite
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
    prediction: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    def add(self, *args, **kwargs) -> None:
        self.checks.append(Check(*args, **kwargs))

    def to_dict(self) -> dict:
        return {"artifact": "android_bench doctor", "target": self.target, "where": self.where,
                "python": self.python, "ok": not self.failed, "checks": [asdict(c) for c in self.checks],
                "prediction": self.prediction, "facts": self.facts}

    def text(self) -> str:
        out = [f"doctor: {self.target} ({self.where}), Python {self.python}"]
        width = max((len(c.name) for c in self.checks), default=8)
        for c in self.checks:
            out.append(f"  {c.status:<4}  {c.name:<{width}}  {c.message}")
            if c.fix:
                out.append(f"        {'':<{width}}  fix: {c.fix}")
        p = self.prediction
        if p:
            out.append(f"int8 vs float32: {p['verdict']}")
            out += [f"  - {r}" for r in p["reasons"]]
        out.append("FAIL: fix the items above before `python -m android_bench run`" if self.failed else
                   "no FAIL: `python -m android_bench run` can run here")
        return "\n".join(out)


# ---- the probe models, made here with TensorFlow, cached ----

def probe_models(cache: Path = CACHE) -> dict[str, Path]:
    """{"float32": path, "int8": path}: tiny models with MobileNet's ops, converted once per TF version."""
    folder = Path(cache) / f"doctor-probes-{PROBE_FORMAT}-tf{_tensorflow_version()}"
    paths = {name: folder / f"{PROBE}{name}.tflite" for name in ("float32", "int8")}
    if all(p.is_file() for p in paths.values()):
        return paths
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # before TensorFlow's first import: a quiet converter
    import keras
    import tensorflow as tf
    import numpy as np
    from keras import layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 8))
    h = layers.Conv2D(16, 3, padding="same", activation="relu6", name="conv")(inp)
    h = layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="block_1_depthwise")(h)
    out = layers.Dense(4, name="logits")(layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)

    def representative_dataset():
        rng = np.random.default_rng(0)
        for _ in range(16):
            yield [rng.uniform(-1, 1, (1, 16, 16, 8)).astype(np.float32)]

    with tempfile.TemporaryDirectory() as tmp:
        model.export(f"{tmp}/saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(f"{tmp}/saved_model")
        files.write_bytes(paths["float32"], converter.convert())
        converter = tf.lite.TFLiteConverter.from_saved_model(f"{tmp}/saved_model")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
        files.write_bytes(paths["int8"], converter.convert())
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


def device_facts(target: Target, probes: dict[str, Path], models: Sequence[Path] = ()) -> dict:
    """The device-side doctor's JSON, run in a temporary folder on the target."""
    names = [Path(m).name for m in models]
    if len(set(names)) != len(names):
        raise DoctorError(f"two --model files with the same name among {names}: rename one")
    payload = {name: REPO / name for name in DOCTOR_FILES}
    probe_names = {f"probes/{PROBE}{name}.tflite": path for name, path in probes.items()}
    probe_names.update({f"models/{Path(m).name}": Path(m) for m in models})
    with Session(target) as session:
        session.upload({**payload, **probe_names})
        args = ["-m", "android_bench.device.doctor", *[a for n in probe_names for a in ("--probe", n)]]
        code, out, err = session.python(args, timeout=900)
    if code != 0:
        raise TargetError(f"the doctor failed on {target.where} (exit {code}): "
                          f"{' | '.join(err[-3:]) or 'no message'}")
    return json.loads(out)


# ---- facts -> checklist and prediction ----

def _version(text: str | None) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", text or "")[:3])


def selected_runtime(runtimes: dict, runtime: str = "auto") -> str | None:
    """The runtime ``run --runtime`` would use: the named one, else the first that imports (the runner's rule)."""
    if runtime != "auto":
        return runtime
    return next((n for n in device.RUNTIMES if n in runtimes and not runtimes[n].get("import_error")), None)


def _probe(info: dict, name: str) -> dict | None:
    """The result of the probe model ``name`` ("int8", "float32") or of a --model file ("x.tflite")."""
    file = name if name.endswith(".tflite") else f"{PROBE}{name}.tflite"
    return next((p for p in info.get("probes") or [] if p["model"] == file), None)


def usable(info: dict | None) -> bool:
    """The runtime imports and runs the probes (a --model it cannot run does not count against it)."""
    probes = [p for p in (info or {}).get("probes") or [] if p["model"].startswith(PROBE)]
    return bool(info) and not info.get("import_error") and not any(p.get("error") for p in probes)


def _coverage(p: dict | None) -> str:
    if p is None or p.get("delegated") is None:
        return "unknown"
    return f"{len(p['delegated'])} of {p['ops']} ops"


def int8_xnnpack(info: dict | None) -> bool | None:
    """True if XNNPACK took the int8 probe's compute ops, False if not, None if that cannot be told."""
    p = _probe(info or {}, "int8")
    if p is None or p.get("error") or p.get("delegated") is None:
        return None
    return not any(op in p["not_delegated"] for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))


def predict_int8(system: dict, runtime: str | None, info: dict | None) -> dict:
    """{"verdict", "reasons"}: will the int8 model beat float32 on this target, and why not.

    Two things decide it: whether the runtime runs int8 ops on XNNPACK at all
    (the probe says; tflite-runtime 2.14's default delegate leaves them to the
    builtin kernels), and whether the CPU has an int8 dot-product instruction
    (x86 VNNI, ARM dotprod). Without VNNI an x86 int8 multiply-accumulate takes
    three instructions (vpmaddubsw, vpmaddwd, vpaddd) where float32 takes one
    FMA for half as many lanes; without dotprod ARM widens with SMULL/SADALP.
    """
    no_faster, smaller = [], []
    features = system.get("features") or {}
    took = int8_xnnpack(info)
    version = (info or {}).get("version")
    float_probe = _probe(info or {}, "float32")
    if took is False:
        also = (f" while float32 runs on XNNPACK ({_coverage(float_probe)} of the float32 probe)"
                if float_probe and float_probe.get("delegated") else "")
        no_faster.append(f"{runtime} {version} does not run int8 ops on XNNPACK (int8 probe: {_coverage(_probe(info, 'int8'))} "
                         f"delegated): int8 runs on TFLite's builtin kernels{also}; fix: pip install ai-edge-litert")
    elif took is None and runtime == "tflite_runtime" and _version(version) and _version(version)[:2] <= (2, 14):
        no_faster.append(f"tflite-runtime {version}'s default XNNPACK delegate leaves int8 ops to the builtin "
                         f"kernels (observed with the probe wherever it could run)")
    if features.get("isa") == "x86" and features.get("vnni") is False:
        no_faster.append("x86 without VNNI (no avx512_vnni nor avx_vnni in /proc/cpuinfo): int8 multiply-"
                         "accumulate takes three AVX2 instructions where float32 takes one FMA")
    if features.get("isa") == "arm" and features.get("dotprod") is False:
        smaller.append("ARM without dotprod (no asimddp in /proc/cpuinfo, e.g. the Pi 4's Cortex-A72): int8 "
                       "products are widened with SMULL/SADALP, so int8 gains less over float32 than on a "
                       "CPU with SDOT (Cortex-A55/A76 and later)")
    if no_faster:
        return {"verdict": "int8 likely no faster than float32", "reasons": no_faster + smaller}
    if smaller:
        return {"verdict": "int8 likely faster, but by less than on a CPU with dotprod", "reasons": smaller}
    if runtime is None:
        return {"verdict": "unknown: no working runtime to judge", "reasons": [
            "int8 is faster here only if the runtime runs int8 ops on XNNPACK (ai-edge-litert does; "
            "tflite-runtime 2.14 does not)"]}
    why = []
    if took:
        why.append(f"{runtime} {version} runs the int8 probe on XNNPACK ({_coverage(_probe(info, 'int8'))})")
    if features.get("vnni") or features.get("dotprod"):
        why.append("the CPU has an int8 dot-product instruction (" +
                   ", ".join(k for k in ("avx512_vnni", "avx_vnni", "asimddp", "i8mm") if features.get(k)) + ")")
    return {"verdict": "int8 likely faster than float32", "reasons": why}


def _runtime_checks(d: Diagnosis, runtimes: dict, chosen: str | None, numpy: str | None) -> None:
    for name in device.RUNTIMES:
        info = runtimes.get(name) or {}
        label = f"runtime {name}"
        mark = " (what `run --runtime auto` uses)" if name == chosen else ""
        if info.get("not_installed"):   # FAIL only when asked for by name (--runtime)
            d.add(label, FAIL if name == chosen else INFO, f"not installed ({INSTALL[name]})")
            continue
        if info.get("import_error"):
            d.add(label, FAIL if name == chosen else WARN, f"does not import: {info['import_error']}{mark}",
                  NUMPY_FIX if info.get("numpy_abi_mismatch") else INSTALL[name])
            continue
        broken = [p for p in info.get("probes") or [] if p.get("error") and p["model"].startswith(PROBE)]
        if not broken:
            d.add(label, OK, f"{name} {info.get('version')} builds and runs an interpreter{mark}")
        elif info.get("numpy_abi_mismatch"):
            d.add(label, FAIL if name == chosen else WARN,
                  f"{name} {info.get('version')} imports but cannot build an interpreter under numpy "
                  f"{numpy}: {broken[0]['error'][:200]}{mark}", "see `numpy 2 vs tflite-runtime` below")
        elif all("find op" in p["error"] for p in broken):
            d.add(label, WARN, f"{name} {info.get('version')} is older than this converter's ops: "
                               f"{broken[0]['error'][:200]}{mark}",
                  f"pip install -U {INSTALL[name].split()[-1]} (or convert with an older TensorFlow)")
        else:
            d.add(label, FAIL if name == chosen else WARN,
                  f"{name} {info.get('version')} cannot run the probe: {broken[0]['error'][:200]}{mark}",
                  INSTALL[name])
    if chosen is None:
        d.add("runtime", FAIL, "no TFLite runtime imports", NO_RUNTIME_HINT)
    tfl = runtimes.get("tflite_runtime") or {}
    if tfl.get("numpy_abi_mismatch"):
        d.add("numpy 2 vs tflite-runtime", FAIL if chosen == "tflite_runtime" else WARN,
              f"tflite-runtime {tfl.get('version')} was built against numpy 1.x and fails under numpy {numpy} "
              f"(`_ARRAY_API not found` when an Interpreter is built)", NUMPY_FIX)
    elif tfl.get("version"):
        d.add("numpy 2 vs tflite-runtime", OK, f"tflite-runtime {tfl['version']} with numpy {numpy}: compatible")


def _xnnpack_checks(d: Diagnosis, runtimes: dict, chosen: str | None, models: Sequence[Path]) -> None:
    info = runtimes.get(chosen) if chosen else None
    if not info or info.get("import_error"):
        return
    int8, f32 = _probe(info, "int8"), _probe(info, "float32")
    took = int8_xnnpack(info)
    where = f"{chosen} {info.get('version')}"
    if took:
        d.add("XNNPACK int8", OK, f"{where}: XNNPACK runs the int8 probe ({_coverage(int8)}) "
                                  f"and the float32 one ({_coverage(f32)})")
    elif took is False:
        left = ", ".join(int8["not_delegated"])
        d.add("XNNPACK int8", WARN, f"{where}: XNNPACK took {_coverage(int8)} of the int8 probe (left to the "
                                    f"builtin kernels: {left}); float32 probe: {_coverage(f32)}",
              "pip install ai-edge-litert: its XNNPACK runs int8 (QS8) ops")
    elif int8 is not None and int8.get("delegated") is None and not int8.get("error"):
        d.add("XNNPACK int8", INFO, f"{where} does not list its graph (_get_ops_details): cannot tell")
    for m in models:
        p = _probe(info, Path(m).name) or {}
        if p.get("error"):
            d.add(f"model {Path(m).name}", WARN, f"{where} cannot run it: {p['error'][:200]}")
        elif p.get("delegated") is not None:
            rest = sorted(set(p["not_delegated"]))
            d.add(f"model {Path(m).name}", INFO, f"{where}: XNNPACK takes {_coverage(p)}" +
                  (f"; builtin kernels run {', '.join(rest)}" if rest else ""))


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
             probes: dict[str, Path] | None = None) -> Diagnosis:
    """Run every check on ``target``; never raises for a problem of the target, records it as FAIL."""
    d = Diagnosis(target.spec, target.where, target.python)
    try:
        target.check_reachable()
    except TargetError as e:
        d.add("target", FAIL, str(e))
        return d
    system = shell_facts(target)
    d.facts["system"] = system
    d.add("target", OK, f"reached {target.where}: {system.get('os') or 'unknown OS'}, {system.get('machine')}, "
                        f"{system.get('cores')} cores")
    code, version = python_version(target)
    if code != 0:
        from android_bench.adb import AdbTarget
        android = isinstance(target, AdbTarget)
        d.add("python", WARN if android else FAIL,
              f"{target.python} {'was not found' if code == 127 else 'does not run'} on {target.where}"
              f" ({version or code}); only the shell facts were read",
              "install Python 3.9+ (Termux: pkg install python python-numpy) or pass --python" if android else
              "sudo apt install python3 python3-pip, or pass --python /path/to/python3")
    elif _version(version) < (3, 9):
        d.add("python", FAIL, f"Python {version}: the runner needs 3.9 or newer",
              "install Python 3.9+ (Raspberry Pi OS Bullseye or later) or pass --python")
    else:
        d.add("python", OK, f"Python {version} ({target.python})")
        try:
            facts = device_facts(target, probes if probes is not None else probe_models(), models)
        except TargetError as e:
            d.add("device doctor", FAIL, str(e))
            _system_checks(d, system)
            d.prediction = predict_int8(system, None, None)
            return d
        d.facts.update({k: v for k, v in facts.items() if k != "system"})
        numpy = facts.get("numpy")
        if numpy:
            d.add("numpy", OK, f"numpy {numpy}")
        else:
            d.add("numpy", FAIL, f"numpy does not import: {facts.get('numpy_error')}",
                  "pip install numpy (with tflite-runtime: pip install 'numpy<2')")
        chosen = selected_runtime(facts["runtimes"], runtime)
        _runtime_checks(d, facts["runtimes"], chosen, numpy)
        _xnnpack_checks(d, facts["runtimes"], chosen, models)
        info = facts["runtimes"].get(chosen) if chosen else None
        d.prediction = predict_int8(system, chosen if usable(info) else None, info if usable(info) else None)
    _system_checks(d, system)
    if not d.prediction:
        d.prediction = predict_int8(system, None, None)
    return d
