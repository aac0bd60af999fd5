"""python -m android_bench doctor: real runtimes in real venvs, a real sshd, /proc/cpuinfo texts of real CPUs."""
from __future__ import annotations

import ast
import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from android_bench import doctor, int8_verdict
from android_bench.__main__ import cli
from android_bench.device import doctor as device
from android_bench.targets import LocalTarget, SshTarget, parse_target
from tests.android_bench.conftest import CACHE, cached_venv, free_port

ROOT = Path(__file__).resolve().parents[2]
NUMPY2_VENV = CACHE / "venv-tflite-runtime-2.14.0-numpy2"
NUMPY2_REQUIREMENTS = ["numpy>=2", "tflite-runtime==2.14.0"]

# /proc/cpuinfo as these machines print it (one core shown, or two where the format repeats).
SKYLAKE_SP = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 85
model name	: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
stepping	: 4
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves arat pku ospke
bogomips	: 4800.00

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves arat pku ospke
"""
ALDER_LAKE = """\
processor	: 0
vendor_id	: GenuineIntel
model name	: 12th Gen Intel(R) Core(TM) i7-1265U
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb ssbd ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb intel_pt sha_ni xsaveopt xsavec xgetbv1 xsaves split_lock_detect avx_vnni dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp hwp_pkg_req hfi umip pku ospke waitpkg gfni vaes vpclmulqdq rdpid movdiri movdir64b fsrm md_clear serialize arch_lbr ibt flush_l1d arch_capabilities
"""
PI4_AARCH64 = """\
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Revision	: c03114
Serial		: 10000000a1b2c3d4
Model		: Raspberry Pi 4 Model B Rev 1.4
"""
PI5_AARCH64 = """\
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1

Revision	: d04170
Model		: Raspberry Pi 5 Model B Rev 1.0
"""
PIXEL_BIG_LITTLE = """\
processor	: 0
BogoMIPS	: 49.15
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint i8mm bti
CPU implementer	: 0x41
CPU part	: 0xd46

processor	: 4
BogoMIPS	: 49.15
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint i8mm bti
CPU implementer	: 0x41
CPU part	: 0xd47
"""
PI3_ARMV7 = """\
processor	: 0
model name	: ARMv7 Processor rev 4 (v7l)
BogoMIPS	: 38.40
Features	: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
CPU implementer	: 0x41
CPU architecture: 7
CPU part	: 0xd03

Hardware	: BCM2835
Model		: Raspberry Pi 3 Model B Plus Rev 1.3
"""


def test_cpu_features_from_real_cpuinfo_texts():
    sky = device.cpu_features(SKYLAKE_SP, "x86_64")
    assert (sky["isa"], sky["avx2"], sky["avx512f"], sky["avx512_vnni"], sky["avx_vnni"], sky["vnni"]) == \
        ("x86", True, True, False, False, False)
    adl = device.cpu_features(ALDER_LAKE, "x86_64")
    assert (adl["avx2"], adl["avx512_vnni"], adl["avx_vnni"], adl["vnni"]) == (True, False, True, True)
    pi4 = device.cpu_features(PI4_AARCH64, "aarch64")
    assert (pi4["isa"], pi4["asimd"], pi4["asimddp"], pi4["dotprod"], pi4["i8mm"]) == ("arm", True, False, False, False)
    pi5 = device.cpu_features(PI5_AARCH64, "aarch64")
    assert (pi5["dotprod"], pi5["i8mm"], pi5["asimdhp"]) == (True, False, True)
    pixel = device.cpu_features(PIXEL_BIG_LITTLE, "aarch64")
    assert (pixel["dotprod"], pixel["i8mm"], pixel.get("differs_between_cores")) == (True, True, None)
    pi3 = device.cpu_features(PI3_ARMV7, "armv7l")
    assert (pi3["isa"], pi3["neon"], pi3["dotprod"]) == ("arm", True, False)
    # big.LITTLE where only the big cores have i8mm: it does not count
    mixed = PIXEL_BIG_LITTLE.replace("frint i8mm bti\nCPU implementer\t: 0x41\nCPU part\t: 0xd47", "frint bti\n")
    assert mixed != PIXEL_BIG_LITTLE
    m = device.cpu_features(mixed, "aarch64")
    assert m["i8mm"] is False and m["dotprod"] is True and m["differs_between_cores"] is True
    # a VM that hides the flags: unknown, not "no"
    hidden = device.cpu_features("processor\t: 0\nmodel name\t: QEMU Virtual CPU\n", "x86_64")
    assert hidden["isa"] == "x86" and hidden["listed"] is False and hidden["vnni"] is None


def test_parsers_of_governor_thermal_and_vcgencmd():
    assert device.parse_governors(["ondemand", "ondemand", "schedutil", ""]) == "ondemand,schedutil"
    assert device.parse_governors([]) is None
    assert device.parse_thermal(["cpu-thermal 51121", "x86_pkg_temp 40000", "cpu-thermal 49000", "bad x"]) == \
        {"cpu-thermal": 51.121, "x86_pkg_temp": 40.0, "cpu-thermal#2": 49.0}
    assert device.parse_vcgencmd(["temp=51.1'C", "throttled=0x50005"]) == {"temp": "51.1'C", "throttled": "0x50005"}
    assert device.throttled_flags("0x50005") == ["under-voltage now", "throttled now", "under-voltage has occurred",
                                                 "throttling has occurred"]
    assert device.throttled_flags("0x0") == []


def _ops(*nodes):
    return [{"index": i, "op_name": name, "inputs": ins, "outputs": outs} for i, (name, ins, outs) in enumerate(nodes)]


def test_delegated_ops_walks_each_partition():
    # conv -> conv -> SHAPE-like op -> conv; a delegate took the first two and another the last one
    ops = _ops(("CONV_2D", [0, 10, 11], [1]), ("DEPTHWISE_CONV_2D", [1, 12, 13], [2]), ("RESHAPE", [2, 14], [3]),
               ("FULLY_CONNECTED", [3, 15, -1], [4]), ("DELEGATE", [0, 10, 11, 12, 13], [2]),
               ("DELEGATE", [3, 15], [4]))
    assert device.delegated_ops(ops) == (["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"], ["RESHAPE"])
    assert device.delegated_ops(ops[:4]) == ([], ["CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "FULLY_CONNECTED"])


def _runtime(version, int8_took, name="tflite_runtime", float32_ms=None, int8_ms=None):
    ops = ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"]
    return {"name": name, "version": version, "probes": [
        {"model": "doctor_probe_int8.tflite", "error": None, "ops": 4, "delegated": ops if int8_took else [],
         "not_delegated": [] if int8_took else ops, "median_ms": int8_ms, "runs": 30, "threads": 1},
        {"model": "doctor_probe_float32.tflite", "error": None, "ops": 4, "delegated": ops, "not_delegated": [],
         "median_ms": float32_ms, "runs": 30, "threads": 1}]}


def test_int8_prediction_from_the_facts():
    x86 = lambda text: {"features": device.cpu_features(text, "x86_64")}   # noqa: E731
    arm = lambda text: {"features": device.cpu_features(text, "aarch64")}   # noqa: E731
    p = int8_verdict.predict(x86(SKYLAKE_SP), "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert"))
    assert p["verdict"] == int8_verdict.LIKELY_NOT and "without VNNI" in p["reasons"][0]
    p = int8_verdict.predict(x86(ALDER_LAKE), "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert"))
    assert p["verdict"] == int8_verdict.LIKELY_FASTER and "avx_vnni" in p["reasons"][1]
    # builtin int8 kernels against float32 XNNPACK: still faster with VNNI (measured 1.29-1.41x), by less
    p = int8_verdict.predict(x86(ALDER_LAKE), "tflite_runtime", _runtime("2.14.0", False))
    assert p["verdict"] == int8_verdict.LIKELY_LESS
    assert "0 of 4 ops" in p["reasons"][0] and "pip install ai-edge-litert" in p["reasons"][0]
    p = int8_verdict.predict(arm(PI4_AARCH64), "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert"))
    assert p["verdict"] == int8_verdict.LIKELY_LESS and "asimddp" in p["reasons"][0]
    p = int8_verdict.predict(arm(PI4_AARCH64), "tflite_runtime", _runtime("2.14.0", False))
    assert p["verdict"] == int8_verdict.LIKELY_LESS and len(p["reasons"]) == 2
    p = int8_verdict.predict(arm(PI5_AARCH64), "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert"))
    assert p["verdict"] == int8_verdict.LIKELY_FASTER and "asimddp" in p["reasons"][1]
    # the probe could not run (no Python on the device), the version alone still says it
    p = int8_verdict.predict(arm(PI5_AARCH64), "tflite_runtime", {"version": "2.14.0", "probes": []})
    assert p["verdict"] == int8_verdict.LIKELY_LESS and "tflite-runtime 2.14.0" in p["reasons"][0]
    assert int8_verdict.predict(arm(PI5_AARCH64), None, None)["verdict"].startswith("unknown")


def test_the_measured_ratio_decides_the_verdict():
    """tflite-runtime 2.14 on this repository's x86 machine (VNNI): float32 0.890 ms and int8 0.666 ms
    for the default model, the README's figures. The facts alone said "no faster" before; the
    measurement is the verdict, with the reasons beside it."""
    x86 = {"features": device.cpu_features(ALDER_LAKE, "x86_64")}
    v = int8_verdict.verdict(x86, "tflite_runtime", _runtime("2.14.0", False, float32_ms=0.890, int8_ms=0.666))
    assert v["verdict"] == "int8 faster than float32 here: 1.34x, measured"
    assert v["predicted"] == int8_verdict.LIKELY_LESS and v["measured"]["speedup"] == pytest.approx(0.890 / 0.666)
    assert "float32 0.89 ms, int8 0.666 ms (medians of 30 and 30 runs)" in v["reasons"][0]
    assert not any("measurement decides" in r for r in v["reasons"])      # the facts agreed: faster, by less
    # facts and measurement disagree: the measurement decides, and says so
    sky = {"features": device.cpu_features(SKYLAKE_SP, "x86_64")}
    v = int8_verdict.verdict(sky, "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert", 0.30, 0.20))
    assert v["verdict"] == "int8 faster than float32 here: 1.50x, measured" and v["predicted"] == int8_verdict.LIKELY_NOT
    assert v["reasons"][-1] == f'the facts suggested "{int8_verdict.LIKELY_NOT}"; the measurement decides'
    v = int8_verdict.verdict(x86, "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert", 0.30, 0.40))
    assert v["verdict"] == "int8 slower than float32 here: 0.75x, measured" and "decides" in v["reasons"][-1]
    v = int8_verdict.verdict(x86, "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert", 0.30, 0.29))
    assert v["verdict"] == "int8 about as fast as float32 here: 1.03x, measured"
    # not timed (an old device doctor, a probe that failed): the facts' verdict, said as a likelihood
    v = int8_verdict.verdict(x86, "tflite_runtime", _runtime("2.14.0", False))
    assert v["verdict"] == int8_verdict.LIKELY_LESS and v["measured"] is None
    # emulated: no speed verdict at all, whatever was timed
    v = int8_verdict.verdict(x86, "ai_edge_litert", _runtime("2.3.0", True, "ai_edge_litert", 70.0, 31.0),
                             emulation="qemu-aarch64 7.2, user-mode emulation of a cortex-a72 CPU")
    assert v["verdict"] == "no speed verdict: this target is emulated" and v["measured"] is None
    assert v["predicted"] is None and "instruction translation" in v["reasons"][0]


def test_shell_facts_agree_with_the_device_side_reading():
    shell = doctor.shell_facts(LocalTarget())
    here = device.system_facts()
    for key in ("machine", "cpu", "cores", "features", "governor", "temperature_c", "os"):
        assert shell[key] == here[key], key
    assert shell["features"]["listed"] is True


def test_device_side_is_python_3_9():
    ast.parse((ROOT / "android_bench/device/doctor.py").read_text(), feature_version=(3, 9))


@pytest.fixture(scope="session")
def probes():
    return doctor.probe_models()


def _by_name(diagnosis):
    out = {}
    for c in diagnosis.checks:
        out.setdefault(c.name, c)
    return out


def _measured_and_consistent(prediction: dict) -> dict:
    """The verdict is the one its own measurement gives: float32's median over int8's, both timed."""
    m = prediction["measured"]
    assert m is not None and m["float32_ms"] > 0 and m["int8_ms"] > 0 and min(m["runs"]) >= 30, prediction
    assert m["speedup"] == pytest.approx(m["float32_ms"] / m["int8_ms"])
    assert prediction["verdict"] == int8_verdict.measured_verdict(m["speedup"])
    assert prediction["reasons"][0].startswith("measured with ")
    return m


def test_doctor_on_this_venv(probes, bench_build):
    d = doctor.diagnose(LocalTarget(), models=[bench_build.models[2]], probes=probes)
    checks = _by_name(d)
    assert not d.failed, d.text()
    runtimes = d.facts["runtimes"]
    assert runtimes["ai_edge_litert"]["version"] == metadata.version("ai-edge-litert")
    assert runtimes["tensorflow"]["version"] == metadata.version("tensorflow-cpu")
    assert runtimes["tflite_runtime"]["not_installed"] is True
    assert d.facts["numpy"] == metadata.version("numpy")
    assert checks["runtime ai_edge_litert"].status == "OK" and "what `run --runtime auto` uses" in \
        checks["runtime ai_edge_litert"].message
    assert checks["XNNPACK int8"].status == "OK"
    assert re.search(r"runs the int8 probe \(\d+ of \d+ ops\)", checks["XNNPACK int8"].message)
    int8 = next(p for p in runtimes["ai_edge_litert"]["probes"] if p["model"] == "int8.tflite")
    assert int8["error"] is None and "CONV_2D" in int8["delegated"] and int8["input_dtype"] in ("uint8", "int8")
    assert int8["median_ms"] > 0 and "ms at 1 thread" in checks["model int8.tflite"].message
    assert runtimes["ai_edge_litert"]["xnnpack_logged"] is True
    vnni = d.facts["system"]["features"].get("vnni")
    assert checks["CPU features"].status == ("OK" if vnni else "WARN")
    _measured_and_consistent(d.prediction)
    assert d.prediction["predicted"] == (int8_verdict.LIKELY_FASTER if vnni else int8_verdict.LIKELY_NOT)
    assert d.predictions == {"ai_edge_litert": d.prediction}


def test_cli_doctor_json_and_text(probes):
    r = CliRunner().invoke(cli, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    assert doc["ok"] is True and doc["target"] == "local"
    assert {c["name"] for c in doc["checks"]} >= {"target", "python", "numpy", "runtime ai_edge_litert",
                                                  "XNNPACK int8", "CPU features", "governor", "thermal"}
    r = CliRunner().invoke(cli, ["doctor"])
    assert r.exit_code == 0 and "OK    runtime ai_edge_litert" in r.output and "int8 vs float32:" in r.output


@pytest.mark.slow
def test_doctor_on_the_tflite_runtime_venv(tflite_runtime_python, probes):
    d = doctor.diagnose(LocalTarget(python=str(tflite_runtime_python)), probes=probes)
    checks = _by_name(d)
    assert not d.failed, d.text()
    assert d.facts["runtimes"]["tflite_runtime"]["version"] == "2.14.0" and d.facts["numpy"].startswith("1.")
    assert checks["runtime tflite_runtime"].status == "OK"
    assert checks["runtime ai_edge_litert"].status == "INFO"
    assert checks["numpy 2 vs tflite-runtime"].status == "OK"
    # tflite-runtime 2.14's XNNPACK takes none of the int8 probe's ops
    assert checks["XNNPACK int8"].status == "WARN" and "took 0 of " in checks["XNNPACK int8"].message
    assert "pip install ai-edge-litert" in checks["XNNPACK int8"].fix
    # the verdict is what the int8 and float32 probes measured there, not a rule that measurements
    # contradict (int8 was 1.29-1.41x faster than float32 with this runtime on the default model)
    _measured_and_consistent(d.prediction)
    assert d.prediction["predicted"] == int8_verdict.LIKELY_LESS


@pytest.fixture(scope="session")
def numpy2_tflite_runtime_python():
    """numpy 2 and tflite-runtime 2.14.0 together: the broken stack `pip install tflite-runtime numpy` can give."""
    return cached_venv(NUMPY2_VENV, NUMPY2_REQUIREMENTS,
                       "import numpy, tflite_runtime; assert numpy.__version__ >= '2'")


@pytest.mark.slow
def test_doctor_finds_the_numpy2_conflict(numpy2_tflite_runtime_python, probes):
    d = doctor.diagnose(LocalTarget(python=str(numpy2_tflite_runtime_python)), probes=probes)
    checks = _by_name(d)
    assert d.failed
    conflict = checks["numpy 2 vs tflite-runtime"]
    assert conflict.status == "FAIL" and "_ARRAY_API not found" in conflict.message
    assert "pip install 'numpy<2'" in conflict.fix and "ai-edge-litert" in conflict.fix
    assert checks["runtime tflite_runtime"].status == "FAIL"
    assert d.facts["runtimes"]["tflite_runtime"]["numpy_abi_mismatch"] is True
    assert d.prediction["verdict"].startswith("unknown")
    r = CliRunner().invoke(cli, ["doctor", "--python", str(numpy2_tflite_runtime_python)])
    assert r.exit_code == 1 and "FAIL  numpy 2 vs tflite-runtime" in r.output


def test_doctor_over_ssh(sshd, probes):
    target = parse_target(sshd.spec, sys.executable, sshd.options)
    d = doctor.diagnose(target, probes=probes)
    checks = _by_name(d)
    assert not d.failed, d.text()
    assert checks["target"].message.startswith(f"reached {sshd.user}@127.0.0.1 (port {sshd.port})")
    assert d.facts["runtimes"]["ai_edge_litert"]["version"] == metadata.version("ai-edge-litert")
    assert d.facts["system"]["features"] == device.system_facts()["features"]   # the same machine
    assert checks["XNNPACK int8"].status == "OK"


@pytest.mark.arm
def test_doctor_python_without_numpy_or_runtime(bullseye, probes):
    """Debian bullseye's own Python 3.9, without numpy: the device side runs on 3.9 itself."""
    d = doctor.diagnose(parse_target(bullseye.target, bullseye.python), probes=probes, python=bullseye.python)
    checks = _by_name(d)
    assert checks["python"].status == "OK" and checks["python"].message.startswith("Python 3.9.")
    assert checks["numpy"].status == "FAIL" and "No module named 'numpy'" in checks["numpy"].message
    assert checks["runtime"].status == "FAIL" and "ai-edge-litert" in checks["runtime"].fix
    assert d.failed and d.prediction["verdict"] == "no speed verdict: this target is emulated"


@pytest.mark.arm
def test_doctor_on_the_emulated_pi_checks_each_runtime_run_uses(pi_emu_root, probes):
    """`run --target pi-emu` runs once per venv (tflite_runtime, ai_edge_litert): the doctor checks both."""
    d = doctor.diagnose(parse_target("pi-emu"), probes=probes)
    checks = _by_name(d)
    assert not d.failed, d.text()
    for name, version in (("tflite_runtime", "2.14.0"), ("ai_edge_litert", "2.3.0")):
        c = checks[f"runtime {name}"]
        assert c.status == "OK" and f"{name} {version} builds and runs" in c.message, c
        assert f"what `run` uses, with /opt/venv/{name}/bin/python" in c.message
        assert f"XNNPACK int8 ({name})" in checks
        assert d.predictions[name]["verdict"] == "no speed verdict: this target is emulated"
        assert all(p.get("median_ms") is None for p in d.facts["runtimes"][name]["probes"])   # not timed
    assert checks["XNNPACK int8 (tflite_runtime)"].status == "WARN"
    assert checks["XNNPACK int8 (ai_edge_litert)"].status == "OK"
    text = d.text()
    assert "int8 vs float32 (tflite_runtime): no speed verdict" in text and "measured" not in text


def test_missing_python_and_unreachable_host_are_fails(probes):
    d = doctor.diagnose(LocalTarget(python="/nonexistent/python3"), probes=probes)
    checks = _by_name(d)
    assert checks["python"].status == "FAIL" and "was not found" in checks["python"].message
    assert "--python" in checks["python"].fix and d.failed
    assert checks["CPU features"].status in ("OK", "WARN")   # the shell facts are still read
    target = SshTarget(spec="ssh://nobody@127.0.0.1", python="python3", user="nobody", host="127.0.0.1",
                       port=free_port(), connect_timeout=3)
    d = doctor.diagnose(target, probes=probes)
    assert [(c.name, c.status) for c in d.checks] == [("target", "FAIL")] and "cannot log in" in d.checks[0].message


def test_doctor_on_a_phone_without_python(tmp_path, monkeypatch, probes):
    """Through the adb target, on fake_adb's TEST DOUBLE of a phone (its shell runs the real commands)."""
    from tests.android_bench import fake_adb
    fake_adb.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_HOME", str(tmp_path / "home"))
    fake_adb.FakeDevice(tmp_path / "home", "R58M123ABC").create(
        {"ro.product.model": "Pixel 8", "ro.build.version.release": "14"}, governor="schedutil",
        temperature_mc=41000)
    d = doctor.diagnose(parse_target("adb"), probes=probes)
    checks = _by_name(d)
    assert not d.failed, d.text()                       # no Python: the benchmark_model path still works
    assert checks["python"].status == "WARN" and "Termux" in checks["python"].fix
    assert d.facts["system"]["device_model"] == "Pixel 8" and d.facts["system"]["governor"] == "schedutil"
    assert checks["governor"].status == "WARN" and "scaling_governor" in checks["governor"].fix
    assert checks["thermal"].status == "OK" and "41 °C" in checks["thermal"].message
    assert d.prediction["measured"] is None and d.prediction["verdict"].startswith(("unknown", "int8 likely"))
