"""The sweep's report: every configuration and variant in one table, and the Pareto front.

Writes ``OUT/report.json``, ``report.md`` and ``report.png`` (each under a
temporary name first). A row is one (configuration, variant, thread count) as
measured on the target: median latency of one image and top-1 on the eval pack,
both from the target's results file, with the model's parameters and
multiply-adds and the .tflite's size. The Pareto front is taken per thread
count over every successful row: a row is on it when no other row is at least
as fast and at least as accurate and strictly better in one of the two.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Sequence

from android_bench.report import format_ms, format_pct, format_size, machine_line
from android_bench.sweep.grid import SweepConfig
from android_bench.sweep.stages import Entry, is_done, read_marker
from export import verify
from quantize import files
from quantize.config import Variant

REPORT_JSON, REPORT_MD, REPORT_PNG = "report.json", "report.md", "report.png"
VARIANT_ORDER = [v.value for v in Variant]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (latency, accuracy) points, True where no other point dominates: has latency <= and
    accuracy >= with at least one strict. Identical points do not dominate each other, so
    duplicates on the front are all kept; of two equally fast points only the more accurate
    one stays."""
    pts = [(float(lat), float(acc)) for lat, acc in points]
    for lat, acc in pts:
        if math.isnan(lat) or math.isnan(acc):
            raise ValueError(f"a Pareto point has no value: ({lat}, {acc})")
    return [not any(l2 <= lat and a2 >= acc and (l2 < lat or a2 > acc) for l2, a2 in pts)
            for lat, acc in pts]


def collect(entries: list[Entry], out: Path) -> list[dict]:
    """One row per configuration, variant and thread count that the benchmark measured
    (a configuration that failed or was not reached gives one row with its error)."""
    rows = []
    for e in entries:
        c, folder = e.configuration, e.folder
        base = {"config": c.id, "name": c.name, "label": c.label, **dict(c.varied), "arch": c.train.arch.value,
                "alpha": c.train.alpha, "resolution": c.train.resolution, "epochs": c.train.epochs,
                "folder": str(folder.relative_to(out)) if folder.is_relative_to(out) else str(folder)}
        marker = read_marker(folder, "bench")
        if marker is None or marker.get("key") != e.keys["bench"] or not is_done(folder, "export", e.keys["export"]):
            rows.append({**base, "variant": None, "error": e.error or "not benchmarked"})
            continue
        try:
            manifest = verify.manifest(folder / "manifest.json", pack=False)
        except verify.VerifyError as e:   # changed since it was benchmarked
            rows.append({**base, "variant": None, "error": f"export: {e}"})
            continue
        results = json.loads((folder / marker["results"]).read_text())
        model = manifest["model"].get("model", {})
        host_top1 = {v["name"]: v["top1"] for v in manifest["variants"]}
        for r in results["results"]:
            rows.append({**base, "variant": r["variant"], "threads": r["threads"], "xnnpack": r.get("xnnpack"),
                         "params": model.get("params"), "macs": model.get("macs"),
                         "size_bytes": r.get("size_bytes"), "median_ms": r.get("median_ms"),
                         "p90_ms": r.get("p90_ms"), "top1": r.get("top1"), "images": r.get("images"),
                         "host_top1": host_top1.get(r["variant"]), "val_top1": manifest["model"].get("val_top1"),
                         "runtime": r.get("runtime"), "runtime_version": r.get("runtime_version"),
                         "target": results.get("target"), "fingerprint": results.get("fingerprint"),
                         "protocol": results.get("protocol"), "measured": results.get("finished"),
                         "emulation": results.get("emulation"), "error": r.get("error")})
    mark_front(rows)
    return rows


def _usable(r: dict) -> bool:
    return not r.get("error") and r.get("median_ms") is not None and r.get("top1") is not None


def mark_front(rows: list[dict]) -> None:
    """Sets ``pareto`` (True, False, or None for rows without both numbers), per thread count
    and XNNPACK setting: a point at 4 threads does not dominate one at 1. Emulated rows get
    None: their latency is the emulator's, so no front can be drawn from it."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        r["pareto"] = None
        if _usable(r) and not r.get("emulation"):
            groups.setdefault((r["threads"], r.get("xnnpack")), []).append(r)
    for group in groups.values():
        for r, on in zip(group, pareto_front([(r["median_ms"], r["top1"]) for r in group])):
            r["pareto"] = on


def _count(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def markdown(doc: dict) -> str:
    rows = doc["results"]
    measured = [r for r in rows if r.get("variant") and not r.get("error")]
    out = ["# Sweep report", "",
           f"{len({r['config'] for r in rows})} configuration(s) from {doc['sweep']['source']}, "
           f"benchmarked on {doc['sweep']['target']}."]
    fixed = ", ".join(f"{k}={v}" for k, v in doc["sweep"]["train"].items())
    out += ["", f"Every configuration: {fixed or 'the training defaults'}; variants "
                f"{', '.join(doc['sweep']['quantize']['variants'])}."]
    if measured:
        latest = max(measured, key=lambda r: r.get("measured") or "")
        out += ["", machine_line(latest.get("fingerprint")) +
                f"; {latest.get('runtime')} {latest.get('runtime_version')}."]
    out += ["", "| config | arch | alpha | resolution | variant | threads | params | MACs | size | median | "
                "top-1 | Pareto |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        head = f"| {r['config']} | {r['arch']} | {r['alpha']:g} | {r['resolution']} |"
        if r.get("variant") is None or r.get("error"):
            error = str(r.get("error")).replace("|", "/").replace("\n", " ")[:160]
            out.append(f"{head} {r.get('variant') or '-'} | {r.get('threads') or '-'} | - | - | - | "
                       f"failed: {error} | - | - |")
            continue
        front = "n/a (emulated)" if r.get("emulation") else \
            {True: "**front**", False: "dominated", None: "-"}[r["pareto"]]
        out.append(f"{head} {r['variant']} | {r['threads']} | {_count(r['params'])} | {_count(r['macs'])} | "
                   f"{format_size(r['size_bytes'])} | {format_ms(r['median_ms'])} | {format_pct(r['top1'])} | {front} |")
    if measured:
        proto = latest.get("protocol") or {}
        images = sorted({r["images"] for r in measured if r.get("images")})
        out += ["", f"Median latency of one image over at least {proto.get('runs', '?')} timed runs "
                    f"({proto.get('min_seconds', '?')} s) after warm-up; top-1 on "
                    f"{', '.join(map(str, images)) or '?'} test images of the eval pack, both on the target. "
                    f"Pareto front per thread count: no other row is as fast and as accurate and better in one.",
                ""]
    seconds = doc.get("seconds", {})
    if seconds:
        out += ["Time spent making these results, on the machine that ran the sweep: " +
                ", ".join(f"{stage} {s / 60:.1f} min" if s >= 60 else f"{stage} {s:.0f} s"
                          for stage, s in seconds.items()) + ".", ""]
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    usable = [r for r in rows if _usable(r)]
    panels = sorted({(r["threads"], r.get("xnnpack")) for r in usable}, key=lambda t: (t[0], t[1] is False))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(8 * max(1, len(panels)), 6), dpi=110,
                             squeeze=False)
    biggest = max((r["size_bytes"] or 0 for r in usable), default=1) or 1
    arches = sorted({r["arch"] for r in usable})
    colors = {a: f"C{i}" for i, a in enumerate(arches)}
    markers = dict(zip(VARIANT_ORDER, "osD^v"))
    for ax, panel in zip(axes[0], panels or [None]):
        mine = [r for r in usable if (r["threads"], r.get("xnnpack")) == panel]
        for r in mine:
            size = 40 + 800 * (r["size_bytes"] or 0) / biggest   # area ∝ file size
            on = r["pareto"]
            ax.scatter(r["median_ms"], 100 * r["top1"], s=size, marker=markers.get(r["variant"], "o"),
                       c=colors[r["arch"]] if on else "lightgrey", alpha=0.85 if on else 0.6,
                       edgecolors="black" if on else "grey", linewidths=1.2 if on else 0.5, zorder=3 if on else 2)
            ax.annotate(f"{r['name']} {r['variant']}", (r["median_ms"], 100 * r["top1"]),
                        textcoords="offset points", xytext=(7, 5), fontsize=7,
                        color="black" if on else "grey")
        front = sorted((r["median_ms"], 100 * r["top1"]) for r in mine if r["pareto"])
        if front:
            ax.step(*zip(*front), where="post", color="black", linestyle="--", linewidth=1, zorder=1,
                    label="Pareto front")
        if not mine:
            ax.text(0.5, 0.5, "no successful measurement", ha="center", transform=ax.transAxes)
        else:
            medians = [r["median_ms"] for r in mine]
            if max(medians) > 10 * min(medians):
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            for a in sorted({r["arch"] for r in mine if r["pareto"]}):
                ax.scatter([], [], c=colors[a], s=40, edgecolors="black", label=f"{a} (on the front)")
            ax.scatter([], [], c="lightgrey", s=40, edgecolors="grey", label="dominated")
            for v in sorted({r["variant"] for r in mine}, key=VARIANT_ORDER.index):
                ax.scatter([], [], c="white", s=40, edgecolors="black", marker=markers.get(v, "o"), label=v)
            ax.legend(fontsize=8, loc="best", framealpha=0.8)
        if panel is not None:
            threads, xnnpack = panel
            ax.set_title(f"{threads} thread{'s' if threads > 1 else ''}" + ("" if xnnpack is not False else
                                                                          ", no XNNPACK"), fontsize=10)
        ax.set_xlabel(f"median latency per image, ms ({ax.get_xscale()} scale; batch 1)")
        ax.set_ylabel("top-1 on the eval pack, %")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Sweep: accuracy against latency (marker area: file size; grey: dominated)")
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write(config: SweepConfig, entries: list[Entry], out: Path) -> dict:
    """Collect every configuration's results; write OUT/report.json, report.md and report.png."""
    out = Path(out)
    rows = collect(entries, out)
    seconds: dict[str, float] = {}
    for e in entries:
        for stage in ("train", "quantize", "export", "bench"):
            marker = read_marker(e.folder, stage)
            if marker and marker.get("key") == e.keys[stage]:
                seconds[stage] = seconds.get(stage, 0.0) + marker.get("seconds", 0.0)
    doc = {"artifact": REPORT_JSON, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sweep": config.to_dict(),
           "configurations": [{"id": e.configuration.id, "label": e.configuration.label,
                               "train": e.configuration.train.to_dict(), "ran": e.ran, "cached": e.cached,
                               "error": e.error} for e in entries],
           "seconds": seconds, "results": rows}
    files.write_json(out / REPORT_JSON, doc)
    files.write_bytes(out / REPORT_MD, (markdown(doc) + "\n").encode("utf-8"))
    plot(rows, out / REPORT_PNG)
    return doc
