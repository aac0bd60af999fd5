"""Merge every results file into one comparison of the variants, per target.

    python -m android_bench report            # build/bench/results/*.json -> build/bench/report.*

Writes, each under a temporary name first:
* ``report.json``: ``results``, one row per (target, runtime, variant, threads,
  XNNPACK) with median_ms, p90_ms, top1, agreement, size_bytes, the target's
  fingerprint and ``error`` (None unless it failed there), plus the speedup and
  change in top-1 against the float32 row of the same target, runtime, threads
  and XNNPACK setting -- a ratio across machines or runtimes would mix two effects;
  on every target but ``local``, ``agreement_with_host`` (see agreement_with_host())
  and ``emulation`` (not None: the latencies time an emulator such as qemu, not a CPU,
  so such rows get no speedup, no ``speedup_ci`` and no latency verdict);
  and the statistics of android_bench.stats: ``speedup_ci`` (95% bootstrap interval of the
  speedup of the median), ``mcnemar_p`` (float32 against the variant on the same images) and
  ``within_noise`` ({"latency", "top1"}: true when the difference is not distinguishable from noise);
* ``report.md``: one table per target, with the machine it was measured on;
* on rows of the ``mediapipe`` runtime (MediaPipe Tasks' ``classify()``, what an app
  sees), ``invoke_median_ms`` and ``invoke_runtime``: the ``invoke()``-only median of the
  same file on the same target at 1 thread (ai_edge_litert when measured), and
  ``app_minus_invoke_ms``, the difference: MediaPipe's pre- and postprocessing, and its own TFLite
  build against the runtime's (``app_vs_invoke()``); report.md shows them side by side;
* ``metadata`` on every row: what the file's metadata lacks or has corrupt (it still
  benchmarks; report.md says what is missing, and ``accuracy_skipped`` why top-1 was not measured);
* ``report.png``: top-1 against median latency, one point per variant, one
  series per target and runtime (and XNNPACK setting, when off was measured),
  at its lowest thread count, marker area proportional to the file size.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from android_bench import stats
from android_bench.bench import RESULTS
from android_bench.device.evaluate import agreement
from quantize import files
from quantize.config import Variant

REPORT_JSON, REPORT_MD, REPORT_PNG = "report.json", "report.md", "report.png"
REFERENCE = Variant.FLOAT32.value
VARIANT_ORDER = [v.value for v in Variant]
ROW_KEYS = ("target", "variant", "runtime", "runtime_version", "threads", "xnnpack", "median_ms", "p90_ms",
            "min_ms", "mean_ms", "p99_ms", "std_ms", "runs", "init_ms", "first_ms", "peak_rss_kb",
            "baseline_rss_kb", "top1", "per_class_top1", "images", "agreement", "reference", "size_bytes",
            "file", "sha256", "xnnpack_delegate_logged", "error",
            # benchmark_model rows (android_bench.adb_bench): which delegate, whether median_ms is its
            # median or its mean, where top-1 was measured, its memory lines and per-op profile
            "delegate", "latency_statistic", "accuracy_source", "warmup_avg_ms", "peak_memory_mb",
            "memory_init_mb", "memory_overall_mb", "op_profile",
            # what the file's metadata lacks (the runner still measures its latency)
            "metadata", "accuracy_skipped")
APP_RUNTIME = "mediapipe"


class ReportError(ValueError):
    pass


def load(results_dir: Path) -> tuple[list[dict], list[dict]]:
    """(rows, sources) of every results/*.json; each row carries its target's fingerprint."""
    paths = sorted(p for p in Path(results_dir).glob("*.json") if ".partial" not in p.name)
    if not paths:
        raise ReportError(f"no results in '{results_dir}': run `python -m android_bench run` (or make bench) first")
    rows, sources, docs = [], [], {}
    for path in paths:
        try:
            doc = docs[path.name] = json.loads(path.read_text())
            results = doc["results"]
        except (ValueError, KeyError) as e:
            raise ReportError(f"'{path}' is not a results file of `python -m android_bench run` ({e}): "
                              f"remove it or run the benchmark again") from None
        sources.append({"file": path.name, "sha256": files.sha256(path), "target": doc.get("target"),
                        "finished": doc.get("finished")})
        for r in results:
            row = {k: r.get(k) for k in ROW_KEYS}
            row["target"] = row["target"] or doc.get("target")
            row.update(fingerprint=doc.get("fingerprint"), measured=doc.get("finished"), results_file=path.name,
                       protocol=doc.get("protocol"), emulation=doc.get("emulation"))
            rows.append(row)
    agreement_with_host(rows, docs)
    rows.sort(key=_order)
    compare(rows)
    app_vs_invoke(rows)
    stats.annotate(rows, docs, _key, REFERENCE)   # speedup_ci, mcnemar_p, within_noise (android_bench.stats)
    return rows, sources


def _predictions(doc: dict) -> dict:
    """{model sha256: per-image top-1} of one results file (the runner's ``predictions``)."""
    sha = {r["variant"]: r.get("sha256") for r in doc.get("results", [])}
    return {sha[v]: p for v, p in (doc.get("predictions") or {}).items() if sha.get(v)}


def _eval_pack_sha(doc: dict) -> str | None:
    return ((doc.get("host") or {}).get("eval_pack") or {}).get("sha256")


def agreement_with_host(rows: list[dict], docs: dict[str, dict]) -> None:
    """Sets ``agreement_with_host`` on the rows of every target but ``local``.

    The fraction of images whose top-1 on the target equals the host's (the ``local``
    target's) for the same model file (sha256) and eval pack (sha256), over the images
    both evaluated (each takes the pack's first N: ``agreement_with_host_images``). The host
    result of the same runtime is taken (then only the CPU differs: like with like), else
    any local one: ``host_runtime`` says which, and ``agreement_with_host_same_runtime`` is
    False then, because two runtimes' kernels differ on their own (their int8 predictions
    differed on 4 of 2,000 images on one x86 machine). None where no host result exists:
    run ``--target local`` on the same files first, with the same runtime
    (``--runtime tflite_runtime --python`` a venv with tflite-runtime and numpy<2).
    """
    hosts = [(d.get("environment", {}).get("runtime"), d.get("environment", {}).get("runtime_version"),
              _eval_pack_sha(d), _predictions(d)) for d in docs.values() if d.get("target") == "local"]
    mine = {name: _predictions(d) for name, d in docs.items()}
    for r in rows:
        r.update(agreement_with_host=None, agreement_with_host_images=None, host_runtime=None, top1_vs_host=None,
                 agreement_with_host_same_runtime=None)
        doc = docs[r["results_file"]]
        pred = mine[r["results_file"]].get(r["sha256"])
        if r["target"] == "local" or pred is None:
            continue
        found = [h for h in hosts if h[2] is not None and h[2] == _eval_pack_sha(doc) and r["sha256"] in h[3]]
        found.sort(key=lambda h: h[0] != r["runtime"])
        if not found:
            continue
        runtime, version, _, host = found[0]
        ref = host[r["sha256"]]
        n = min(len(ref), len(pred))
        if n:
            r.update(agreement_with_host=agreement(np.asarray(pred[:n]), np.asarray(ref[:n])),
                     agreement_with_host_images=n, host_runtime=f"{runtime} {version}",
                     agreement_with_host_same_runtime=runtime == r["runtime"])
        # Δ top-1 only over the same images: the host row of that runtime with as many images
        same = [h for h in rows if h["target"] == "local" and h["sha256"] == r["sha256"] and h["runtime"] == runtime
                and h["top1"] is not None and h["images"] == r["images"] == n and r["top1"] is not None]
        r["top1_vs_host"] = r["top1"] - same[0]["top1"] if same else None


def _order(row: dict):
    v = row["variant"]
    rank = VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER)
    return (row["target"] or "", row["runtime"] or "", not row.get("xnnpack", True), row.get("delegate") or "",
            row["threads"] or 0, rank, v)


def _key(row: dict) -> tuple:
    return (row["target"], row["runtime"], row["runtime_version"], row["threads"], row.get("xnnpack"),
            row.get("delegate"))


def compare(rows: list[dict]) -> list[dict]:
    """Adds speedup_vs_float32 and top1_vs_float32 against the float32 row of the same setting;
    an emulated row gets no speedup: its latency is the emulator's."""
    reference = {_key(r): r for r in rows if r["variant"] == REFERENCE and not r["error"]}
    for r in rows:
        ref = reference.get(_key(r))
        ok = ref is not None and not r["error"]
        timed = ok and r["median_ms"] and not r.get("emulation")
        r["speedup_vs_float32"] = ref["median_ms"] / r["median_ms"] if timed else None
        r["top1_vs_float32"] = (r["top1"] - ref["top1"] if ok and r["top1"] is not None
                                and ref["top1"] is not None else None)
    return rows


def app_vs_invoke(rows: list[dict]) -> None:
    """Sets ``invoke_median_ms``, ``invoke_runtime`` and ``app_minus_invoke_ms`` on each MediaPipe row: the
    invoke()-only median of the same file (sha256) on the same target, 1 thread, XNNPACK on, preferring
    ai_edge_litert; None when there is none."""
    for r in rows:
        if r["runtime"] != APP_RUNTIME:
            continue
        same = [h for h in rows if h["runtime"] not in (APP_RUNTIME, "benchmark_model") and not h["error"]
                and h["target"] == r["target"] and h["sha256"] == r["sha256"] and h["threads"] == 1
                and h.get("xnnpack", True) and h["median_ms"]]
        same.sort(key=lambda h: h["runtime"] != "ai_edge_litert")
        ok = bool(same) and not r["error"] and r["median_ms"] is not None
        r.update(invoke_median_ms=same[0]["median_ms"] if ok else None,
                 invoke_runtime=f"{same[0]['runtime']} {same[0]['runtime_version']}" if ok else None,
                 invoke_top1=same[0]["top1"] if ok else None,
                 app_minus_invoke_ms=r["median_ms"] - same[0]["median_ms"] if ok else None)


def app_latency_markdown(rows: list[dict]) -> list[str]:
    """MediaPipe's classify() against invoke() alone, per variant, with both top-1."""
    lines = []
    for r in rows:
        if r["runtime"] != APP_RUNTIME or r["error"]:
            continue
        diff = "-" if r.get("app_minus_invoke_ms") is None else f"{r['app_minus_invoke_ms']:+.3f} ms"
        emulated = " (emulated)" if r.get("emulation") else ""
        lines.append(f"| {r['variant']} | {format_ms(r['median_ms'])}{emulated} | {format_ms(r.get('invoke_median_ms'))}"
                     f" | {diff} | {r.get('invoke_runtime') or '-'} | {format_pct(r['top1'])} | "
                     f"{format_pct(r.get('invoke_top1'))} |")
    if not lines:
        return []
    version = next(r["runtime_version"] for r in rows if r["runtime"] == APP_RUNTIME)
    return [f"App-level latency: median of MediaPipe Tasks {version} `ImageClassifier.classify()` on one uint8 "
            f"RGB frame (its preprocessing, inference with its own TFLite at its default threads, postprocessing), "
            f"beside `invoke()` alone at 1 thread; top-1 of MediaPipe's answers and of the runner's on the same images:", "",
            "| variant | classify() | invoke() | classify() - invoke() | invoke() runtime | top-1 MediaPipe | top-1 runner |",
            "|---|---:|---:|---:|---|---:|---:|", *lines, ""]


def metadata_markdown(rows: list[dict]) -> list[str]:
    """What each file's metadata lacks: it was benchmarked all the same."""
    seen, lines = set(), []
    for r in rows:
        meta = r.get("metadata") or {}
        said = [*meta.get("missing", []), *meta.get("problems", [])]
        if r.get("accuracy_skipped"):
            said.append(r["accuracy_skipped"])
        if said and (r["file"], tuple(said)) not in seen:
            seen.add((r["file"], tuple(said)))
            lines.append(f"- {r['file']} ({r['runtime']}): " + "; ".join(said))
    return ["Metadata missing or corrupt (latency was measured all the same):", "", *lines, ""] if lines else []


def format_ms(v) -> str:
    """Three significant digits: 0.0131 ms for a toy model, 2.48 ms, 183 ms for int16x8 on a Pi."""
    if v is None:
        return "-"
    text = f"{v:.0f}" if v >= 99.95 else f"{v:#.3g}".rstrip(".")
    return f"{text} ms"


def format_size(n) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def format_pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def machine_line(fp: dict | None) -> str:
    if not fp:
        return "machine unknown"
    parts = [f"{fp.get('hostname')}: {fp.get('cpu') or fp.get('arch')}", f"{fp.get('cores')} cores",
             f"{fp.get('arch')}", f"{fp.get('os')}"]
    if fp.get("python") or fp.get("numpy"):   # a phone measured with benchmark_model has neither
        parts += [f"Python {fp.get('python')}", f"numpy {fp.get('numpy')}"]
    if fp.get("governor"):
        parts.append(f"governor {fp['governor']}")
    temps = fp.get("temperature_c") or {}
    if temps:
        parts.append("temperature " + ", ".join(f"{k} {v:.0f} °C" for k, v in temps.items()))
    if fp.get("vcgencmd"):
        parts.append("vcgencmd " + ", ".join(f"{k}={v}" for k, v in fp["vcgencmd"].items()))
    return ", ".join(parts)


def markdown(rows: list[dict]) -> str:
    out = ["# Benchmark report", ""]
    for target in sorted({r["target"] for r in rows}):
        mine = [r for r in rows if r["target"] == target]
        latest = max(mine, key=lambda r: r["measured"] or "")
        out += [f"## {target}", "", machine_line(latest["fingerprint"]), "", *_emulation_note(mine),
                "| variant | runtime | threads | size | median | p90 | speedup vs float32 | top-1 | "
                "Δ top-1 vs float32 | agreement |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in mine:
            runtime = f"{r['runtime']} {r['runtime_version']}" + (
                f", {r['delegate'].upper()} delegate" if r.get("delegate") in ("gpu", "nnapi") else
                "" if r.get("xnnpack", True) else ", no XNNPACK")
            if r["error"]:
                error = r["error"].replace("|", "/").replace("\n", " ")
                out.append(f"| {r['variant']} | {runtime} | {r['threads']} | {format_size(r['size_bytes'])} | "
                           f"failed: {error[:160]} | | | | | |")
                continue
            speedup = "n/a (emulated)" if r.get("emulation") else \
                "-" if r["speedup_vs_float32"] is None else f"{r['speedup_vs_float32']:.2f}x"
            change = "-" if r["top1_vs_float32"] is None else f"{100 * r['top1_vs_float32']:+.2f} pt"
            mean = " (mean)" if r.get("latency_statistic") == "mean" else ""   # a benchmark_model without median
            mean += " (emulated)" if r.get("emulation") else ""
            where = f" ({r['accuracy_source']})" if r.get("accuracy_source") == "host-evaluated" else ""
            out.append(f"| {r['variant']} | {runtime} | {r['threads']} | {format_size(r['size_bytes'])} | "
                       f"{format_ms(r['median_ms'])}{mean} | {format_ms(r['p90_ms'])} | {speedup} | {format_pct(r['top1'])}{where} | "
                       f"{change} | {format_pct(r['agreement'])} |")
        proto = latest.get("protocol") or {}
        images = sorted({r["images"] for r in mine if r["images"]})
        out += ["", f"Latency: median and p90 of at least {proto.get('runs', '?')} timed `invoke()` calls "
                    f"(`classify()` for {APP_RUNTIME}) "
                    f"(and {proto.get('min_seconds', '?')} s) on one image after a warm-up of "
                    f"{proto.get('warmup_runs', '?')} runs and {proto.get('warmup_seconds', '?')} s. "
                    f"Top-1 and agreement with float32 on {', '.join(map(str, images)) or '?'} eval-pack images.",
                ""]
        out += app_latency_markdown(mine) + metadata_markdown(mine)
        if any(r["runtime"] == "benchmark_model" for r in mine):
            from android_bench.benchmark_model import markdown_notes, op_profile_markdown
            out += markdown_notes(mine, proto) + op_profile_markdown(mine)
        out += stats.markdown(mine, REFERENCE)
        if target != "local":
            out += host_agreement_markdown(mine)
    return "\n".join(out)


def _emulation_note(rows: list[dict]) -> list[str]:
    emulated = sorted({r["emulation"] for r in rows if r.get("emulation")})
    if not emulated:
        return []
    return [f"**Emulated latencies:** this target ran under {'; '.join(emulated)}. Its latencies time instruction "
            f"emulation, not the CPU: they are not real-time figures and compare with nothing. Its top-1 and "
            f"agreement are real results of the target's kernels (the ARM ones for an arm64 target).", ""]


def host_agreement_markdown(rows: list[dict]) -> list[str]:
    """Per variant and runtime: agreement of this target's predictions with the host's, and Δ top-1."""
    seen, lines = set(), []
    for r in rows:
        key = (r["variant"], r["runtime"], r["runtime_version"])
        if r.get("agreement_with_host") is None or key in seen:
            continue
        seen.add(key)
        change = "-" if r.get("top1_vs_host") is None else f"{100 * r['top1_vs_host']:+.2f} pt"
        host = r["host_runtime"] + ("" if r.get("agreement_with_host_same_runtime") else
                                    " (another runtime: not only the CPU differs)")
        lines.append(f"| {r['variant']} | {r['runtime']} {r['runtime_version']} | {format_pct(r['agreement_with_host'])} "
                     f"| {r['agreement_with_host_images']} | {host} | {change} |")
    if not lines:
        return ["Agreement with the host: no `local` results for the same model files and eval pack "
                "(run `python -m android_bench run --target local` on them for it).", ""]
    crossed = sorted({r["runtime"] for r in rows if r.get("agreement_with_host_same_runtime") is False})
    note = [f"For like with like, measure the host with {', '.join(crossed)} too: `python -m android_bench run "
            f"--target local --runtime RUNTIME --python PYTHON` with a Python that has it (tflite-runtime: a "
            f"venv with numpy<2).", ""] if crossed else []
    return ["Predictions against the host's (target `local`, same model file and images):", "",
            "| variant | runtime | agreement with host | images | host runtime | Δ top-1 vs host |",
            "|---|---|---:|---:|---|---:|", *lines, "", *note]


def series(rows: list[dict]) -> dict[str, list[dict]]:
    """{label: rows} for the plot: per target, runtime and XNNPACK setting, the lowest thread count."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not r["error"] and r["median_ms"] is not None and r["top1"] is not None:
            key = (r["target"], r["runtime"], r["runtime_version"], r.get("xnnpack", True) is not False,
                   r.get("delegate") if r.get("delegate") in ("gpu", "nnapi") else None)
            groups.setdefault(key, []).append(r)
    out = {}
    for (target, runtime, version, xnnpack, delegate), rs in groups.items():
        threads = min(r["threads"] for r in rs)
        label = f"{target} · {runtime} {version} · {threads} thread{'s' if threads > 1 else ''}"
        label += f" · {delegate.upper()}" if delegate else "" if xnnpack else " · no XNNPACK"
        label += " · emulated latency" if any(r.get("emulation") for r in rs) else ""
        out[label] = [r for r in rs if r["threads"] == threads]
    return out


def _annotate(ax, labels: list[tuple]) -> None:
    """Name each point; a label that would overprint one already placed moves up a line.

    Variants often land on the same spot (float32 and dynamic_int8 agree to the
    image and run at the same speed), which would print their names on top of
    each other.
    """
    ax.autoscale_view()
    pt = ax.figure.dpi / 72          # display pixels per point
    placed: list[tuple] = []         # where the labels placed so far start, in points
    for name, x, y in sorted(labels, key=lambda v: (v[1], v[2])):
        px, py = ax.transData.transform((x, y)) / pt
        dy = 6
        while any(abs(px - qx) < 5 * max(len(name), 6) and abs(py + dy - qy) < 10 for qx, qy in placed):
            dy += 10
        placed.append((px, py + dy))
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, dy), fontsize=8,
                    arrowprops=None if dy == 6 else {"arrowstyle": "-", "lw": 0.5, "color": "grey"})


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    groups = series(rows)
    biggest = max((r["size_bytes"] or 0 for rs in groups.values() for r in rs), default=1) or 1
    markers = "osD^vP*X"
    labels = []
    for i, (label, rs) in enumerate(sorted(groups.items())):
        x = [r["median_ms"] for r in rs]
        y = [100 * r["top1"] for r in rs]
        s = [30 + 600 * (r["size_bytes"] or 0) / biggest for r in rs]   # area ∝ file size
        ax.scatter(x, y, s=s, alpha=0.6, marker=markers[i % len(markers)], label=label, edgecolors="black")
        labels += [(r["variant"], xi, yi) for r, xi, yi in zip(rs, x, y)]
    if not groups:
        ax.text(0.5, 0.5, "no successful measurement with accuracy", ha="center", transform=ax.transAxes)
    else:
        medians = [r["median_ms"] for rs in groups.values() for r in rs]
        if max(medians) > 10 * min(medians):   # int16x8 is tens of times slower than the rest
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        _annotate(ax, labels)
        legend = ax.legend(fontsize=8, loc="best")
        for handle in legend.legend_handles:
            handle.set_sizes([40])
    ax.set_xlabel(f"median latency per image, ms ({ax.get_xscale()} scale; batch 1)")
    ax.set_ylabel("top-1 on the eval pack, %")
    ax.set_title("Accuracy against latency (marker area: file size)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write(out: Path) -> dict:
    """Read OUT/results/*.json, write OUT/report.json, report.md and report.png; returns the report."""
    out = Path(out)
    rows, sources = load(out / RESULTS)
    report = {"artifact": REPORT_JSON, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sources": sources,
              "results": rows}
    files.write_json(out / REPORT_JSON, report)
    files.write_bytes(out / REPORT_MD, (markdown(rows) + "\n").encode("utf-8"))
    plot(rows, out / REPORT_PNG)
    return report
