"""Will int8 beat float32 on a target? Measured on the doctor's probes, with the reasons beside it.

    from android_bench.int8_verdict import verdict
    verdict(system, "tflite_runtime", info)     # {"verdict", "reasons", "predicted", "measured"}

``info`` is one runtime's facts from the device-side doctor (``android_bench.device.doctor``):
its version and, per probe model, which ops XNNPACK took and the median latency at 1 thread.
The probes are the default model's architecture (``android_bench.doctor.probe_models``).

Two things come out, and the first one decides:

* ``measured``: float32's median over int8's, at 1 thread, on the target. Within
  ``SAME_SPEED`` of 1 it is "about as fast": a quick measurement (0.5 s per probe) on a
  busy machine moves by that much. The ratio is the probe's; models much smaller than
  the default gain less from int8 (their time is per-op overhead, not arithmetic), so
  ``--model`` times your own files too;
* ``predicted``: what the facts suggest, and why: whether the runtime runs int8 ops on
  XNNPACK at all (tflite-runtime 2.14's default delegate leaves them to TFLite's builtin
  kernels, which still run faster than float32 XNNPACK on an x86 CPU with VNNI:
  1.3-1.4x for the default model on the project's machine, against 2.7x with
  ai-edge-litert), and whether the CPU has an int8 dot-product instruction (x86 VNNI,
  ARM dotprod). Without VNNI an x86 int8 multiply-accumulate takes three instructions
  (vpmaddubsw, vpmaddwd, vpaddd) where float32 takes one FMA for half as many lanes;
  without dotprod ARM widens with SMULL/SADALP.

An emulated target (qemu: pi-emu) gets no verdict at all: its timings are qemu's
translation, not a CPU's.
"""
from __future__ import annotations

import re

SAME_SPEED = 1.1
PROBE = "doctor_probe_"   # probe file names: doctor_probe_int8.tflite, doctor_probe_float32.tflite
LIKELY_FASTER = "int8 likely faster than float32"
LIKELY_LESS = "int8 likely faster than float32, but by less than it could be"
LIKELY_NOT = "int8 likely no faster than float32"


def version_tuple(text: str | None) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", text or "")[:3])


def probe(info: dict, name: str) -> dict | None:
    """The result of the probe model ``name`` ("int8", "float32") or of a --model file ("x.tflite")."""
    file = name if name.endswith(".tflite") else f"{PROBE}{name}.tflite"
    return next((p for p in info.get("probes") or [] if p["model"] == file), None)


def coverage(p: dict | None) -> str:
    if p is None or p.get("delegated") is None:
        return "unknown"
    return f"{len(p['delegated'])} of {p['ops']} ops"


def int8_xnnpack(info: dict | None) -> bool | None:
    """True if XNNPACK took the int8 probe's compute ops, False if not, None if that cannot be told."""
    p = probe(info or {}, "int8")
    if p is None or p.get("error") or p.get("delegated") is None:
        return None
    return not any(op in p["not_delegated"] for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))


def measured(info: dict | None) -> dict | None:
    """{"float32_ms", "int8_ms", "speedup", "runs", "threads"} of the timed probes, None if not both were timed."""
    f, q = probe(info or {}, "float32"), probe(info or {}, "int8")
    if not f or not q or f.get("error") or q.get("error") or not f.get("median_ms") or not q.get("median_ms"):
        return None
    return {"float32_ms": f["median_ms"], "int8_ms": q["median_ms"], "speedup": f["median_ms"] / q["median_ms"],
            "runs": [f.get("runs"), q.get("runs")], "threads": f.get("threads", 1)}


def measured_verdict(speedup: float) -> str:
    if speedup >= SAME_SPEED:
        return f"int8 faster than float32 here: {speedup:.2f}x, measured"
    if speedup <= 1 / SAME_SPEED:
        return f"int8 slower than float32 here: {speedup:.2f}x, measured"
    return f"int8 about as fast as float32 here: {speedup:.2f}x, measured"


def predict(system: dict, runtime: str | None, info: dict | None) -> dict:
    """{"verdict", "reasons"}: what the facts suggest, before any measurement."""
    no_faster, smaller = [], []
    features = system.get("features") or {}
    took = int8_xnnpack(info)
    version = (info or {}).get("version")
    float_probe = probe(info or {}, "float32")
    if took is False:
        also = (f" while float32 runs on XNNPACK ({coverage(float_probe)} of the float32 probe)"
                if float_probe and float_probe.get("delegated") else "")
        smaller.append(f"{runtime} {version} does not run int8 ops on XNNPACK (int8 probe: "
                       f"{coverage(probe(info, 'int8'))} delegated): int8 runs on TFLite's builtin kernels{also}, "
                       f"so it gains less than where XNNPACK runs it; fix: pip install ai-edge-litert")
    elif took is None and runtime == "tflite_runtime" and (2, 0) <= version_tuple(version)[:2] <= (2, 14):
        smaller.append(f"tflite-runtime {version}'s default XNNPACK delegate leaves int8 ops to the builtin "
                       f"kernels (observed with the probe wherever it could run)")
    if features.get("isa") == "x86" and features.get("vnni") is False:
        no_faster.append("x86 without VNNI (no avx512_vnni nor avx_vnni in /proc/cpuinfo): int8 multiply-"
                         "accumulate takes three AVX2 instructions where float32 takes one FMA")
    if features.get("isa") == "arm" and features.get("dotprod") is False:
        smaller.append("ARM without dotprod (no asimddp in /proc/cpuinfo, e.g. the Pi 4's Cortex-A72): int8 "
                       "products are widened with SMULL/SADALP, so int8 gains less over float32 than on a "
                       "CPU with SDOT (Cortex-A55/A76 and later)")
    if no_faster:
        return {"verdict": LIKELY_NOT, "reasons": no_faster + smaller}
    if smaller:
        return {"verdict": LIKELY_LESS, "reasons": smaller}
    if runtime is None:
        return {"verdict": "unknown: no working runtime to judge", "reasons": [
            "int8 is faster here only if the runtime runs int8 ops on XNNPACK (ai-edge-litert does; "
            "tflite-runtime 2.14 does not)"]}
    why = []
    if took:
        why.append(f"{runtime} {version} runs the int8 probe on XNNPACK ({coverage(probe(info, 'int8'))})")
    if features.get("vnni") or features.get("dotprod"):
        why.append("the CPU has an int8 dot-product instruction (" +
                   ", ".join(k for k in ("avx512_vnni", "avx_vnni", "asimddp", "i8mm") if features.get(k)) + ")")
    return {"verdict": LIKELY_FASTER, "reasons": why}


def verdict(system: dict, runtime: str | None, info: dict | None, emulation: str | None = None) -> dict:
    """The measurement's verdict when the probes were timed, else the prediction; none when emulated.

    Returns {"verdict", "reasons", "predicted" (the facts' verdict), "measured" (measured() or None)}.
    """
    if emulation:
        return {"verdict": "no speed verdict: this target is emulated", "predicted": None, "measured": None,
                "reasons": [f"it runs under {emulation}: its timings measure instruction translation, not a "
                            f"CPU, so int8 against float32 there says nothing about a real board; run the "
                            f"doctor on the board itself (--target ssh://...)"]}
    guess = predict(system, runtime, info)
    m = measured(info) if runtime else None
    out = {"verdict": guess["verdict"], "reasons": list(guess["reasons"]), "predicted": guess["verdict"],
           "measured": m}
    if m is not None:
        out["verdict"] = measured_verdict(m["speedup"])
        out["reasons"].insert(0, f"measured with {runtime} {(info or {}).get('version')} at {m['threads']} thread "
                                 f"on the probes (the default model's architecture): float32 {m['float32_ms']:.3g} ms, "
                                 f"int8 {m['int8_ms']:.3g} ms (medians of {m['runs'][0]} and {m['runs'][1]} runs)")
        if _disagrees(guess["verdict"], m["speedup"]):
            out["reasons"].append(f"the facts suggested \"{guess['verdict']}\"; the measurement decides")
    return out


def _disagrees(predicted: str, speedup: float) -> bool:
    if predicted in (LIKELY_FASTER, LIKELY_LESS):
        return speedup < SAME_SPEED
    if predicted == LIKELY_NOT:
        return speedup >= SAME_SPEED
    return False
