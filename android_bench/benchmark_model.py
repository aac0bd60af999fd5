"""Read what TFLite's ``benchmark_model`` prints, into numbers; host side.

    python -m android_bench parse run.log --json
    adb logcat -d | python -m android_bench parse - --json

``parse(text)`` understands the output of the native binary and of the
Android benchmark app (through ``adb logcat``), old and current:

* line prefixes: TFLite's own ``INFO: `` / ``WARN: `` / ``ERROR: ``, Android
  logcat's ``11-28 13:00:00.123  1234  1234 I tflite  : `` (threadtime) and
  ``I/tflite  ( 1234): `` (brief), glog's ``2019-01-01 12:00:00.0: I file.cc:12] ``;
* the summary ``Inference timings in us: Init: 5685, First inference: 18535,
  Warmup (avg): 14462.3, Inference (avg): 14575.2`` and the older
  ``Average inference timings in us: Warmup: …, Init: …, Inference: …``
  (``no stats: …`` before that);
* the statistics of each run loop, ``count=50 first=… curr=… min=… max=…
  avg=… std=…`` (with `` p5=… median=… p95=…`` from binaries that keep the
  per-run times, ``count=1 curr=…`` and ``count=9 curr=…(all same)`` when
  every run took the same time). One line per loop: the warm-up first, the
  timed runs last -- so the *last* ``count=`` line is the timed runs;
* numbers as C++ streams print them: ``2.95034e+06``, ``nan``;
* memory: ``Memory footprint delta from the start of the tool (MB): init=…
  overall=…`` (``Peak memory footprint (MB): init=… overall=…`` in older
  binaries, the same measurement) and ``Overall peak memory footprint (MB)
  via periodic monitoring: …`` (with ``--report_peak_memory_footprint``);
* ``--enable_op_profiling`` tables: Run Order, Top by Computation Time, Top by
  Memory Use (with or without the older ``[start]`` column) and Summary by
  node type, for the initialization and for the regular runs.

Times are µs as printed (``*_us``), memory MB (``*_mb``). Output that is not
benchmark_model's, or stops before the timed runs' statistics and the summary
(a crash, a kill, a cut log) raises ``BenchmarkOutputError`` saying what is
missing: a number is never made up, and never 0 for "not found". A timing or a
count that cannot be (negative, nan, inf) is refused the same way. Messages quote
at most the first 200 characters of a line: a log can be one 50 MB line.
"""
from __future__ import annotations

import math
import re
from typing import Any

REQUIRED = ("init_us", "first_us", "warmup_avg_us", "avg_us", "count", "min_us", "max_us", "std_us")

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf"
_PREFIXES = (
    # logcat -v threadtime: "11-28 13:00:00.123  1234  1234 I tflite  : message"
    re.compile(r"^(?:\d{4}-)?\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+(?:\S+\s+)?\d+\s+\d+\s+[VDIWEFA]\s+[^:]*?\s*: ?"),
    # logcat -v brief: "I/tflite  ( 1234): message"
    re.compile(r"^[VDIWEFA]/[^(]*?\s*\(\s*\d+\): ?"),
    # glog (TensorFlow's own logging): "2017-12-06 17:16:24.731586: I path/file.cc:324] message"
    re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+: [IWEF] \S+:\d+\] "),
)
_LEVEL = re.compile(r"^(INFO|WARN|WARNING|ERROR|VERBOSE|DEBUG): ?")

_SUMMARY = re.compile(rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
                      rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_OLD_SUMMARY = re.compile(rf"Average inference timings in us: Warmup: ({_NUM}), Init: ({_NUM}), "
                          rf"(?:Inference|no stats): ({_NUM})")
_STAT_FIELD = re.compile(rf"(\w+)=({_NUM})")
_STAT_LINE = re.compile(rf"^count=\d+(?: \w+=(?:{_NUM}))*(?:\(all same\))?(?: \w+=(?:{_NUM}))*$")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=({_NUM}) overall=({_NUM})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUM})")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
_SECTIONS = {"Profiling Info for Benchmark Initialization:": "init_profile",
             "Operator-wise Profiling Info for Regular Benchmark Runs:": "op_profile"}
_TABLES = {"Run Order": "run_order", "Top by Computation Time": "top_by_computation_time",
           "Top by Memory Use": "top_by_memory_use", "Summary by node type": "summary_by_node_type"}


class BenchmarkOutputError(ValueError):
    """The text is not (complete) benchmark_model output; the message says what is missing."""


QUOTE = 200   # characters of an offending line quoted in an error


def _quote(text: str) -> str:
    """``text`` for an error message: its first QUOTE characters, repr-quoted."""
    return repr(text[:QUOTE]) + (f"... ({len(text)} characters)" if len(text) > QUOTE else "")


def _timings(values: dict[str, Any], text: str) -> None:
    """Refuse timings and counts that cannot be: nan or inf (None here), or negative."""
    bad = [k for k, v in values.items() if v is None or v < 0]
    if bad:
        raise BenchmarkOutputError(f"impossible {', '.join(bad)} (negative, nan or inf) in {_quote(text)}: "
                                   f"a timing or a count is a finite number >= 0")


def _number(text: str) -> float | int | None:
    """A C++-printed number: int when integral, float otherwise, None for nan/inf."""
    value = float(text)
    if math.isnan(value) or math.isinf(value):
        return None
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return value


def strip_prefix(line: str) -> tuple[str, str | None]:
    """(message, level) of one line: logcat/glog prefixes and TFLite's ``INFO: `` removed."""
    line = line.rstrip("\r\n")
    for prefix in _PREFIXES:
        m = prefix.match(line)
        if m:
            line = line[m.end():]
            break
    m = _LEVEL.match(line)
    if m:
        return line[m.end():], m.group(1)
    return line, None


def parse_stat(line: str) -> dict[str, Any]:
    """``count=50 first=… curr=… min=… max=… avg=… std=… [p5=… median=… p95=…]`` as a dict.

    ``count=N curr=X`` (N = 1, or ``(all same)``) means every run took X: min,
    max, avg and first are X and std is 0, as the statistic itself defines it.
    """
    text = line.strip()
    if not _STAT_LINE.match(text):
        raise BenchmarkOutputError(f"malformed statistics line (cut off?): {_quote(text)}")
    fields = {k: _number(v) for k, v in _STAT_FIELD.findall(text)}
    _timings(fields, text)
    if fields["count"] == 0:
        return {"count": 0}
    if "min" not in fields:   # all runs the same
        if "curr" not in fields:
            raise BenchmarkOutputError(f"statistics line without min/max or curr: {_quote(text)}")
        same = fields["curr"]
        fields = {"count": fields["count"], "first": same, "curr": same, "min": same, "max": same,
                  "avg": same, "std": 0, **{k: v for k, v in fields.items() if k in ("p5", "median", "p95")}}
    else:
        missing = [k for k in ("first", "curr", "max", "avg", "std") if k not in fields]
        if missing:
            raise BenchmarkOutputError(f"statistics line without {', '.join(missing)} (cut off?): {_quote(text)}")
    return fields


def _table_row(text: str, columns: list[str]) -> dict[str, Any] | None:
    """One op-profiling row; columns come from the table's header. None for a blank line."""
    cells = [c.strip() for c in text.split("\t")] if "\t" in text else None
    if cells is not None:
        cells = [c for c in cells if c != ""] if cells and cells[0] == "" else cells
    numeric = [c for c in columns if c not in ("node_type", "name")]
    if cells is None or len(cells) != len(columns):
        # space-aligned (a copy from a terminal): node type and name may hold spaces
        pattern = r"^(?P<node_type>.+?)" + "".join(
            rf"\s+(?P<{c}>{_NUM})%?" for c in numeric) + (r"(?:\s+(?P<name>.*))?$" if "name" in columns else r"$")
        m = re.match(pattern, text.strip())
        if not m:
            return None
        cells = [m.group(c) or "" for c in columns]
    row = {}
    for column, cell in zip(columns, cells):
        if column in ("node_type", "name"):
            row[column] = cell
        else:
            try:
                row[column] = _number(cell.rstrip("%"))
            except ValueError:
                return None
    return row


_HEADER_NAMES = {"[node type]": "node_type", "[start]": "start_ms", "[first]": "first_ms", "[avg ms]": "avg_ms",
                 "[%]": "percent", "[cdf%]": "cdf_percent", "[mem KB]": "mem_kb", "[times called]": "times_called",
                 "[Name]": "name", "[Node type]": "node_type", "[count]": "count", "[avg %]": "percent",
                 "[cdf %]": "cdf_percent"}


def _header(text: str) -> list[str] | None:
    names = re.findall(r"\[[^\]]+\]", text)
    if not names or names[0].lower() != "[node type]":
        return None
    try:
        return [_HEADER_NAMES[n] for n in names]
    except KeyError:
        return None


def parse(text: str) -> dict[str, Any]:
    """The numbers of one benchmark_model run; BenchmarkOutputError if unknown or incomplete."""
    out: dict[str, Any] = {}
    stats: list[dict[str, Any]] = []
    errors: list[str] = []
    loops = 0
    section: dict[str, Any] | None = None
    table: list | None = None
    columns: list[str] | None = None
    for raw in text.splitlines():
        line, level = strip_prefix(raw)
        body = line.strip()
        if level == "ERROR" or body.startswith("Benchmarking failed"):
            errors.append(body)
        if body in _SECTIONS:
            section = out.setdefault(_SECTIONS[body], {})
            table = columns = None
            continue
        if section is not None:
            m = _TABLE_TITLE.match(body)
            if m and m.group(1) in _TABLES:
                table = section.setdefault(_TABLES[m.group(1)], [])
                columns = None
                continue
            if body.startswith("Number of nodes executed:"):
                nodes = body.split(":", 1)[1].strip()
                if not nodes.isdigit():
                    raise BenchmarkOutputError(f"malformed node count (cut off?): {_quote(body)}")
                section["nodes_executed"] = int(nodes)
                table = columns = None
                continue
            if body.startswith("Timings (microseconds):"):
                section["timings_us"] = parse_stat(body.split(":", 1)[1])
                table = columns = None
                continue
            if body.startswith("Memory (bytes):") or body.endswith("nodes observed"):
                continue
            if table is not None:
                if columns is None:
                    columns = _header(body)
                    if columns is None and body:
                        raise BenchmarkOutputError(f"op-profiling table without its header line: {_quote(body)}")
                    continue
                if not body:
                    table = columns = None
                    continue
                row = _table_row(line, columns)
                if row is None:
                    raise BenchmarkOutputError(f"malformed op-profiling row (cut off?): {_quote(body)}")
                table.append(row)
                continue
        if body.startswith("count="):
            stats.append(parse_stat(body))
            section = None
        elif "Inference timings in us:" in body and not body.startswith("Average"):
            m = _SUMMARY.search(body)
            if not m:
                raise BenchmarkOutputError(f"malformed summary line (cut off?): {_quote(body)}")
            found = dict(init_us=_number(m.group(1)), first_us=_number(m.group(2)),
                         warmup_avg_us=_number(m.group(3)), avg_us=_number(m.group(4)))
            _timings(found, body)
            out.update(format="current", **found)
            section = None
        elif body.startswith("Average inference timings in us:"):
            m = _OLD_SUMMARY.search(body)
            if not m:
                raise BenchmarkOutputError(f"malformed summary line (cut off?): {_quote(body)}")
            found = dict(warmup_avg_us=_number(m.group(1)), init_us=_number(m.group(2)), avg_us=_number(m.group(3)))
            _timings(found, body)
            out.update(format="older", **found)
            section = None
        elif "memory footprint" in body.lower():
            m, peak = _MEMORY.search(body), _PEAK.search(body)
            if m:
                out.update(memory_init_mb=_number(m.group(1)), memory_overall_mb=_number(m.group(2)))
            elif peak:
                out["peak_memory_mb"] = _number(peak.group(1))
            elif "(MB)" in body:
                raise BenchmarkOutputError(f"malformed memory line (cut off?): {_quote(body)}")
        elif _MODEL_SIZE.search(body):
            out["model_size_mb"] = _number(_MODEL_SIZE.search(body).group(1))
        elif _RUNNING.search(body):
            loops += 1
    return _finish(out, stats, errors, loops, text)


def _finish(out: dict[str, Any], stats: list[dict[str, Any]], errors: list[str], loops: int,
            text: str) -> dict[str, Any]:
    if not stats and "avg_us" not in out:
        if errors:
            raise BenchmarkOutputError(f"benchmark_model failed: {' | '.join(e[:QUOTE] for e in errors[-3:])}")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        seen = f"it starts with {_quote(lines[0])}" if lines else "it is empty"
        raise BenchmarkOutputError(f"this is not benchmark_model output: no 'Inference timings in us' summary and "
                                   f"no 'count=' statistics ({seen})")
    if loops > len(stats):
        raise BenchmarkOutputError(f"the output stops inside a run loop: {loops} loops started, {len(stats)} "
                                   f"finished (the binary crashed or was killed)"
                                   + (f": {' | '.join(e[:QUOTE] for e in errors[-3:])}" if errors else ""))
    if "avg_us" not in out:
        raise BenchmarkOutputError("the output stops before the 'Inference timings in us' summary (the binary "
                                   "crashed or was killed, or the log was cut)"
                                   + (f": {' | '.join(e[:QUOTE] for e in errors[-3:])}" if errors else ""))
    if not stats:
        raise BenchmarkOutputError("the output has a summary but no 'count=' statistics of the timed runs")
    timed = stats[-1]
    if timed["count"] == 0:
        raise BenchmarkOutputError("the timed runs' statistics say count=0: no inference was timed")
    out["runs"] = timed
    if len(stats) > 1:
        out["warmup"] = stats[-2]
    if "first_us" not in out:   # the older summary has none: the first warm-up run is that figure
        out["first_us"] = out["warmup"].get("first") if len(stats) > 1 and out["warmup"]["count"] else None
    out.update(count=timed["count"], min_us=timed["min"], max_us=timed["max"], std_us=timed["std"])
    for key in ("median", "p5", "p95"):
        if key in timed:
            out[f"{key}_us"] = timed[key]
    missing = [k for k in REQUIRED if k not in out]
    if missing:
        raise BenchmarkOutputError(f"incomplete output, missing {', '.join(missing)}")
    return out


def to_row(parsed: dict[str, Any]) -> dict[str, Any]:
    """The result-schema fields of a parsed run (android_bench.report's row keys), in ms.

    ``median_ms`` is benchmark_model's median when the binary prints one, else
    its mean (``latency_statistic`` says which); benchmark_model prints no p90.
    """
    ms = lambda us: None if us is None else us / 1000.0   # noqa: E731
    median = parsed.get("median_us")
    return {"median_ms": ms(median if median is not None else parsed["avg_us"]),
            "latency_statistic": "median" if median is not None else "mean",
            "p90_ms": None, "p99_ms": None, "min_ms": ms(parsed["min_us"]), "mean_ms": ms(parsed["avg_us"]),
            "std_ms": ms(parsed["std_us"]), "runs": parsed["count"], "init_ms": ms(parsed["init_us"]),
            "first_ms": ms(parsed["first_us"]), "warmup_avg_ms": ms(parsed["warmup_avg_us"]),
            "peak_memory_mb": parsed.get("peak_memory_mb"), "memory_init_mb": parsed.get("memory_init_mb"),
            "memory_overall_mb": parsed.get("memory_overall_mb")}


def summary(parsed: dict[str, Any]) -> str:
    """A few human lines for ``python -m android_bench parse FILE`` without --json."""
    row = to_row(parsed)
    lines = [f"timed runs: {parsed['count']}, {row['latency_statistic']} {row['median_ms']:.4g} ms, "
             f"min {row['min_ms']:.4g} ms, max {parsed['max_us'] / 1000:.4g} ms, std {row['std_ms']:.4g} ms",
             "init " + ("-" if row["init_ms"] is None else f"{row['init_ms']:.4g} ms") + ", first inference "
             + ("-" if row["first_ms"] is None else f"{row['first_ms']:.4g} ms") + ", warm-up average "
             + ("-" if row["warmup_avg_ms"] is None else f"{row['warmup_avg_ms']:.4g} ms")]
    if parsed.get("memory_overall_mb") is not None:
        lines.append(f"memory footprint delta: init {parsed['memory_init_mb']} MB, overall "
                     f"{parsed['memory_overall_mb']} MB")
    if parsed.get("peak_memory_mb") is not None:
        lines.append(f"peak memory footprint: {parsed['peak_memory_mb']} MB")
    ops = (parsed.get("op_profile") or {}).get("run_order")
    if ops:
        lines.append(f"op profile: {len(ops)} nodes; slowest: " + ", ".join(
            f"{r['node_type']} {r['avg_ms']:.3f} ms" for r in top_ops(ops, 3)))
    return "\n".join(lines)


def top_ops(rows: list[dict[str, Any]], n: int = 10) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: -(r.get("avg_ms") or 0) * (r.get("times_called") or 1))[:n]


def markdown_notes(rows: list[dict[str, Any]], protocol: dict[str, Any]) -> list[str]:
    """report.md lines under a target's table that explain its benchmark_model rows."""
    mine = [r for r in rows if r.get("runtime") == "benchmark_model"]
    out = [f"benchmark_model rows: its own measurement -- init, first inference, a warm-up of at least "
           f"{protocol.get('warmup_runs', '?')} runs and {protocol.get('warmup_seconds', '?')} s, then at least "
           f"{protocol.get('runs', '?')} timed runs and {protocol.get('min_seconds', '?')} s; the median of the "
           f"timed runs, or their mean where the binary prints no median (marked \"(mean)\"). benchmark_model "
           f"prints no p90. The version is the binary's sha256."]
    host = sorted({r["variant"] for r in mine if r.get("accuracy_source") == "host-evaluated"})
    if host:
        out.append(f"Top-1 and agreement marked \"(host-evaluated)\" were measured on the host with the same "
                   f".tflite files (the device has no Python with a TFLite runtime), not on the phone: "
                   f"{', '.join(host)}.")
    if any(r.get("accuracy_source") == "device" for r in mine):
        out.append("Top-1 and agreement of the other rows were measured on the device by the device runner.")
    return out + [""]


def op_profile_markdown(rows: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """report.md lines: per benchmark_model row measured with --op-profiling, its slowest ops."""
    out: list[str] = []
    for r in rows:
        ops = ((r.get("op_profile") or {}).get("run_order")) if not r.get("error") else None
        if not ops:
            continue
        total = sum((o.get("avg_ms") or 0) * (o.get("times_called") or 1) for o in ops)
        delegate = r.get("delegate") or ("xnnpack" if r.get("xnnpack") else "cpu")
        out += [f"### Per-op profile: {r['variant']}, {r['threads']} threads, {delegate}", "",
                f"{len(ops)} nodes, {total:.3f} ms per run in total (op profiling on: timings include the "
                f"profiler's overhead); the {min(limit, len(ops))} slowest:", "",
                "| node type | name | avg | times called | share |", "|---|---|---:|---:|---:|"]
        for o in top_ops(ops, limit):
            name = str(o.get("name") or "").replace("|", "/")
            out.append(f"| {o['node_type']} | {name} | {o['avg_ms']:.3f} ms | {o.get('times_called', '-')} | "
                       f"{o.get('percent', 0):.1f}% |")
        out.append("")
    return out
