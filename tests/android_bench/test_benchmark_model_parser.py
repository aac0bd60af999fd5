"""The benchmark_model output parser and `python -m android_bench parse`.

The fixtures are written from the format strings in TFLite's benchmark sources
(benchmark_model.cc, benchmark_tflite_model.cc, profile_summarizer and tsl's
stats_calculator): the current and the older summary line, the statistics line
with and without percentiles and in its "all same" form, the memory lines, the
op-profiling tables with and without the old [start] column, and the line
prefixes of TFLITE_LOG, Android logcat (threadtime and brief) and glog.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from android_bench import benchmark_model as bm
from android_bench.__main__ import cli

T = "\t"
OP_HEADER = T + T.join(["[node type]".rjust(40), "[first]".rjust(9), "[avg ms]".rjust(9), "[%]".rjust(8),
                        "[cdf%]".rjust(8), "[mem KB]".rjust(10), "[times called]".rjust(9), "[Name]"])


def op_row(node_type, first, avg, pct, cdf, mem, called, name):
    return T + T.join([node_type.rjust(40), f"{first:9.3f}", f"{avg:9.3f}", f"{pct:7.3f}%", f"{cdf:7.3f}%",
                       f"{mem:10.3f}", f"{called:9d}", name])


# A current native binary run with --enable_op_profiling and --report_peak_memory_footprint.
CURRENT = "\n".join([
    "INFO: STARTING!",
    "INFO: Log parameter values verbosely: [0]",
    "INFO: Num threads: [4]",
    "INFO: Graph: [/data/local/tmp/mobilenet_v1_1.0_224.tflite]",
    "INFO: Enable op profiling: [1]",
    "INFO: #threads used for CPU inference: [4]",
    "INFO: Loaded model /data/local/tmp/mobilenet_v1_1.0_224.tflite",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "INFO: The input model file size (MB): 16.9008",
    "INFO: Initialized session in 34.617ms.",
    "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding "
    "150 seconds.",
    "INFO: count=23 first=31502 curr=21677 min=21300 max=31502 avg=22107.4 std=2081 p5=21300 median=21677 "
    "p95=24001",
    "",
    "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding "
    "150 seconds.",
    "INFO: count=50 first=21950 curr=21512 min=21093 max=23900 avg=21678.2 std=512 p5=21150 median=21601 "
    "p95=22804",
    "",
    "INFO: Inference timings in us: Init: 34617, First inference: 31502, Warmup (avg): 22107.4, "
    "Inference (avg): 21678.2",
    "INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to "
    "the actual memory footprint of the model at runtime. Take the information at your discretion.",
    "INFO: Memory footprint delta from the start of the tool (MB): init=19.2305 overall=27.8398",
    "INFO: Overall peak memory footprint (MB) via periodic monitoring: 31.5469",
    "INFO: Memory status at the end of exeution:",
    "INFO: - VmRSS              : 30 MB",
    "INFO: + RssAnnon           : 22 MB",
    "INFO: + RssFile + RssShmem : 8 MB",
    "INFO: Profiling Info for Benchmark Initialization:",
    "============================== Run Order ==============================",
    OP_HEADER,
    op_row("ModifyGraphWithDelegate", 28.101, 28.101, 96.4, 96.4, 17000.0, 1, "ModifyGraphWithDelegate/0"),
    op_row("AllocateTensors", 1.049, 1.049, 3.6, 100.0, 0.0, 1, "AllocateTensors/0"),
    "",
    "Number of nodes executed: 2",
    "Timings (microseconds): count=1 curr=29150",
    "Memory (bytes): count=0",
    "2 nodes observed",
    "",
    "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:",
    "============================== Run Order ==============================",
    OP_HEADER,
    op_row("TfLiteXNNPackDelegate", 21.012, 20.554, 99.1, 99.1, 0.0, 1, "[MobilenetV1/Predictions/Reshape_1]:31"),
    op_row("SOFTMAX", 0.201, 0.187, 0.9, 100.0, 0.0, 1, "[MobilenetV1/Predictions/Softmax]:32"),
    "",
    "============================== Top by Computation Time ==============================",
    OP_HEADER,
    op_row("TfLiteXNNPackDelegate", 21.012, 20.554, 99.1, 99.1, 0.0, 1, "[MobilenetV1/Predictions/Reshape_1]:31"),
    op_row("SOFTMAX", 0.201, 0.187, 0.9, 100.0, 0.0, 1, "[MobilenetV1/Predictions/Softmax]:32"),
    "",
    "Number of nodes executed: 2",
    "============================== Summary by node type ==============================",
    T + T.join(["[Node type]".rjust(40), "[count]".rjust(9), "[avg ms]".rjust(10), "[avg %]".rjust(11),
                "[cdf %]".rjust(11), "[mem KB]".rjust(10), "[times called]".rjust(10)]),
    T + T.join(["TfLiteXNNPackDelegate".rjust(40), "1".rjust(9), "20.554".rjust(10), "99.098%".rjust(10),
                "99.098%".rjust(10), "0.000".rjust(10), "1".rjust(9)]),
    T + T.join(["SOFTMAX".rjust(40), "1".rjust(9), "0.187".rjust(10), "0.902%".rjust(10),
                "100.000%".rjust(10), "0.000".rjust(10), "1".rjust(9)]),
    "",
    "Timings (microseconds): count=50 first=21213 curr=20741 min=20391 max=23110 avg=20741.5 std=498",
    "Memory (bytes): count=0",
    "2 nodes observed",
    "",
])

# The Android benchmark app through `adb logcat` (threadtime), a slow model: C++ scientific notation.
LOGCAT = "\n".join(f"11-28 13:00:{i:02d}.{i:03d}  4821  4843 I tflite  : {line}" for i, line in enumerate([
    "Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.",
    "count=1 curr=3102554",
    "",
    "Running benchmark for at least 5 iterations and at least 1 seconds but terminate if exceeding 150 seconds.",
    "count=5 first=2.96012e+06 curr=2.94051e+06 min=2.93877e+06 max=2.96012e+06 avg=2.95034e+06 std=8120",
    "",
    "Inference timings in us: Init: 1.00753e+06, First inference: 3.10255e+06, Warmup (avg): 3.10255e+06, "
    "Inference (avg): 2.95034e+06",
    "Memory footprint delta from the start of the tool (MB): init=212.094 overall=230.5",
])) + "\n11-28 13:00:09.001  1000  1000 I ActivityManager: Process org.tensorflow.lite.benchmark exited\n"

# The older summary (TFLite 1.x), without prefixes, "Peak memory footprint", the [start] column.
OLD_HEADER = T + T.join(["[node type]".rjust(24), "[start]".rjust(17), "[first]".rjust(9), "[avg ms]".rjust(9),
                         "[%]".rjust(8), "[cdf%]".rjust(8), "[mem KB]".rjust(10), "[times called]".rjust(9),
                         "[Name]"])
OLDER = "\n".join([
    "STARTING!",
    "Num runs: [50]",
    "Initialized session in 2.517ms",
    "Running benchmark for at least 1 iterations and at least 0.5 seconds",
    "count=3 first=217409 curr=211321 min=210444 max=217409 avg=213058 std=3104",
    "",
    "Running benchmark for at least 50 iterations and at least 1 seconds",
    "count=50 first=209891 curr=209739 min=209739 max=210599 avg=210028 std=221",
    "",
    "Average inference timings in us: Warmup: 213058, Init: 2517, Inference: 210028",
    "Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
    "actual memory footprint of the model at runtime. Take the information at your discretion.",
    "Peak memory footprint (MB): init=3.0625 overall=9.14062",
    "Operator-wise Profiling Info for Regular Benchmark Runs:",
    "============================== Run Order ==============================",
    OLD_HEADER,
    T + T.join(["CONV_2D".rjust(24), "0.066".rjust(17), "87.754".rjust(9), "60.957".rjust(9), "29.021%".rjust(8),
                "29.021%".rjust(8), "0.000".rjust(10), "1".rjust(9), "[MobilenetV1/Conv2d_0/Relu6]:0"]),
    T + T.join(["DEPTHWISE_CONV_2D".rjust(24), "61.033".rjust(17), "53.628".rjust(9), "49.870".rjust(9),
                "23.743%".rjust(8), "52.764%".rjust(8), "0.000".rjust(10), "1".rjust(9),
                "[MobilenetV1/Conv2d_1_depthwise/Relu6]:1"]),
    "",
])


def test_current_output_with_memory_and_op_profiling():
    p = bm.parse(CURRENT)
    assert (p["format"], p["init_us"], p["first_us"], p["warmup_avg_us"], p["avg_us"]) == \
        ("current", 34617, 31502, 22107.4, 21678.2)
    # the timed runs are the last count= line, not the warm-up and not the op profile's "Timings"
    assert (p["count"], p["min_us"], p["max_us"], p["std_us"]) == (50, 21093, 23900, 512)
    assert (p["p5_us"], p["median_us"], p["p95_us"]) == (21150, 21601, 22804)
    assert p["warmup"]["count"] == 23 and p["warmup"]["median"] == 21677
    assert (p["memory_init_mb"], p["memory_overall_mb"], p["peak_memory_mb"]) == (19.2305, 27.8398, 31.5469)
    assert p["model_size_mb"] == 16.9008
    runs = p["op_profile"]
    assert [r["node_type"] for r in runs["run_order"]] == ["TfLiteXNNPackDelegate", "SOFTMAX"]
    assert runs["run_order"][0] == {"node_type": "TfLiteXNNPackDelegate", "first_ms": 21.012, "avg_ms": 20.554,
                                    "percent": 99.1, "cdf_percent": 99.1, "mem_kb": 0.0, "times_called": 1,
                                    "name": "[MobilenetV1/Predictions/Reshape_1]:31"}
    assert len(runs["top_by_computation_time"]) == 2 and runs["nodes_executed"] == 2
    assert runs["summary_by_node_type"][1] == {"node_type": "SOFTMAX", "count": 1, "avg_ms": 0.187,
                                               "percent": 0.902, "cdf_percent": 100.0, "mem_kb": 0.0,
                                               "times_called": 1}
    assert runs["timings_us"]["avg"] == 20741.5
    init = p["init_profile"]
    assert [r["name"] for r in init["run_order"]] == ["ModifyGraphWithDelegate/0", "AllocateTensors/0"]
    assert init["timings_us"] == {"count": 1, "first": 29150, "curr": 29150, "min": 29150, "max": 29150,
                                  "avg": 29150, "std": 0}
    row = bm.to_row(p)
    assert row["median_ms"] == pytest.approx(21.601) and row["latency_statistic"] == "median"
    assert row["p90_ms"] is None and row["mean_ms"] == pytest.approx(21.6782) and row["runs"] == 50


def test_logcat_prefixes_and_scientific_notation():
    p = bm.parse(LOGCAT)
    assert p["avg_us"] == pytest.approx(2950340.0) and p["init_us"] == pytest.approx(1007530.0)
    assert (p["count"], p["min_us"], p["max_us"], p["std_us"]) == (5, 2938770.0, 2960120.0, 8120)
    assert "median_us" not in p and p["warmup"] == {"count": 1, "first": 3102554, "curr": 3102554,
                                                    "min": 3102554, "max": 3102554, "avg": 3102554, "std": 0}
    assert p["memory_overall_mb"] == 230.5 and "peak_memory_mb" not in p
    row = bm.to_row(p)
    assert row["latency_statistic"] == "mean" and row["median_ms"] == pytest.approx(2950.34)
    brief = "\n".join("I/tflite  ( 4821): " + ln.split(" I tflite  : ", 1)[1] for ln in LOGCAT.splitlines()
                      if " I tflite  : " in ln)
    assert bm.parse(brief) == p


def test_older_summary_peak_memory_and_start_column():
    p = bm.parse(OLDER)
    assert (p["format"], p["warmup_avg_us"], p["init_us"], p["avg_us"]) == ("older", 213058, 2517, 210028)
    assert p["first_us"] == 217409   # the older summary has none: the first warm-up run
    assert (p["count"], p["min_us"], p["max_us"], p["std_us"]) == (50, 209739, 210599, 221)
    assert (p["memory_init_mb"], p["memory_overall_mb"]) == (3.0625, 9.14062)
    ops = p["op_profile"]["run_order"]
    assert ops[1] == {"node_type": "DEPTHWISE_CONV_2D", "start_ms": 61.033, "first_ms": 53.628, "avg_ms": 49.87,
                      "percent": 23.743, "cdf_percent": 52.764, "mem_kb": 0.0, "times_called": 1,
                      "name": "[MobilenetV1/Conv2d_1_depthwise/Relu6]:1"}
    old_no_stats = OLDER.replace("Inference: 210028", "no stats: 210028")
    assert bm.parse(old_no_stats)["avg_us"] == 210028


def test_all_same_runs_with_percentiles_and_glog_prefix():
    glog = "2019-03-01 10:00:00.000001: I tensorflow/lite/tools/benchmark/benchmark_model.cc:118] "
    text = "\n".join(glog + ln for ln in [
        "Running benchmark for at least 1 iterations and at least 0.5 seconds",
        "count=1 curr=1350 p5=1350 median=1350 p95=1350",
        "Running benchmark for at least 9 iterations and at least 0 seconds",
        "count=9 curr=1200(all same) p5=1200 median=1200 p95=1200",
        "Inference timings in us: Init: 812, First inference: 1350, Warmup (avg): 1350, Inference (avg): 1200"])
    p = bm.parse(text)
    assert (p["count"], p["min_us"], p["max_us"], p["std_us"], p["median_us"]) == (9, 1200, 1200, 0, 1200)
    assert p["first_us"] == 1350 and p["init_us"] == 812


def test_space_aligned_op_table():
    """A table copied from a terminal: tabs became spaces, node types and names have spaces."""
    text = CURRENT.replace("\t", "    ").replace("TfLiteXNNPackDelegate", "Convolution (NHWC, QC8) IGEMM")
    ops = bm.parse(text)["op_profile"]["run_order"]
    assert ops[0]["node_type"] == "Convolution (NHWC, QC8) IGEMM" and ops[0]["avg_ms"] == 20.554
    assert ops[1]["name"] == "[MobilenetV1/Predictions/Softmax]:32"


@pytest.mark.parametrize("text, message", [
    ("", "not benchmark_model output"),
    ("hello\nworld\n", r"not benchmark_model output: .* \(it starts with 'hello'\)"),
    (CURRENT.split("INFO: Inference timings in us")[0], "stops before the 'Inference timings in us' summary"),
    (CURRENT.split("INFO: count=50")[0], "stops inside a run loop: 2 loops started, 1 finished"),
    (CURRENT.split(" avg=21678.2")[0], "malformed statistics line|without avg, std"),
    (CURRENT.split("Inference (avg)")[0], "malformed summary line"),
    (CURRENT.replace("count=50 first=21950", "count=50 first="), "malformed statistics line"),
    (CURRENT.split("    0.187\t")[0], "malformed op-profiling row"),
    ("INFO: Created TensorFlow Lite delegate for GPU.\nERROR: Following operations are not supported by GPU "
     "delegate:\nERROR: Failed to apply GPU delegate.\nBenchmarking failed.\n",
     "benchmark_model failed: Following operations .* Failed to apply GPU delegate"),
])
def test_unknown_or_truncated_output_is_an_error(text, message):
    with pytest.raises(bm.BenchmarkOutputError, match=message):
        bm.parse(text)


def test_cli_parse_json_and_errors(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(CURRENT)
    r = CliRunner().invoke(cli, ["parse", str(log), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert {"init_us", "first_us", "warmup_avg_us", "avg_us", "count", "min_us", "max_us", "std_us", "median_us",
            "p5_us", "p95_us", "memory_init_mb", "memory_overall_mb", "peak_memory_mb"} <= set(doc)
    assert doc["median_us"] == 21601 and doc["count"] == 50
    r = CliRunner().invoke(cli, ["parse", "-"], input=LOGCAT)
    assert r.exit_code == 0 and "timed runs: 5, mean 2950 ms" in r.output
    cut = tmp_path / "cut.log"
    cut.write_text(CURRENT.split("INFO: count=50")[0])
    r = CliRunner().invoke(cli, ["parse", str(cut), "--json"])
    assert r.exit_code == 1 and "cut.log: the output stops inside a run loop" in r.output
    assert "{" not in r.output   # no JSON, and no zeros, for a cut log
