"""python -m android_bench run|report -- see ``python -m android_bench --help``."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from android_bench.config import BenchConfig, ConfigError, Runtime, Xnnpack
from android_bench.device.measure import Protocol

_DEFAULT = BenchConfig()
_PROTOCOL = Protocol()
_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")


class ThreadList(click.ParamType):
    name = "threads"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            threads = tuple(int(t) for t in str(value).split(",") if t.strip())
        except ValueError:
            threads = ()
        if not threads:
            self.fail(f"expected comma-separated thread counts such as 1,2,4, got {value!r}", param, ctx)
        return threads


def _progress_printer():
    """stderr lines of the runner: ``[k/N] ...`` drive a progress bar, the rest is shown as is."""
    from tqdm import tqdm
    state = {"bar": None}

    def on_line(line: str) -> None:
        m = _PROGRESS.match(line)
        if m is None:
            if state["bar"] is None:
                click.echo(line, err=True)
            else:
                state["bar"].write(line, file=sys.stderr)
            return
        done, total, message = int(m.group(1)), int(m.group(2)), m.group(3)
        if state["bar"] is None:
            state["bar"] = tqdm(total=total, unit="job", desc="benchmark", file=sys.stderr)
        bar = state["bar"]
        bar.write(f"  {message}", file=sys.stderr)
        bar.update(done - bar.n)

    def close():
        if state["bar"] is not None:
            state["bar"].close()
    return on_line, close


@click.group()
def cli():
    """Latency and accuracy of the exported variants, measured on the target itself."""


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", default="local", show_default=True,
              help="'local', or ssh://[user@]host[:port] (key login; ssh runs with BatchMode=yes)")
@click.option("--python", "python", default=None,
              help="the target's Python  [default: this one for local, python3 over ssh]")
@click.option("--threads", type=ThreadList(), default=",".join(map(str, _DEFAULT.threads)), show_default=True,
              help="interpreter thread counts to sweep")
@click.option("--xnnpack", type=click.Choice([x.value for x in Xnnpack]), default=_DEFAULT.xnnpack.value,
              show_default=True, help="XNNPACK delegate on, off, or both for comparison")
@click.option("--runtime", type=click.Choice([r.value for r in Runtime]), default=_DEFAULT.runtime.value,
              show_default=True, help="interpreter on the target; auto: ai_edge_litert, tflite_runtime, tensorflow")
@click.option("--eval-pack", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="images for accuracy  [default: eval_pack.npz beside the first model]")
@click.option("--no-accuracy", is_flag=True, help="latency only; no eval pack is copied")
@click.option("--eval-images", type=int, default=None, help="the first N eval-pack images  [default: all]")
@click.option("--runs", type=int, default=_PROTOCOL.runs, show_default=True, help="timed runs, at least")
@click.option("--min-seconds", type=float, default=_PROTOCOL.min_seconds, show_default=True,
              help="timed seconds, at least")
@click.option("--warmup-runs", type=int, default=_PROTOCOL.warmup_runs, show_default=True)
@click.option("--warmup-seconds", type=float, default=_PROTOCOL.warmup_seconds, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build/bench"),
              show_default=True, help="writes OUT/results/<target>__<runtime>.json")
@click.option("-i", "--identity", type=click.Path(dir_okay=False, exists=True), default=None,
              help="ssh private key (ssh -i)")
@click.option("-o", "--ssh-option", "ssh_options", multiple=True,
              help="ssh -o option, repeatable: -o Port=2222 -o UserKnownHostsFile=...")
def run(models, target, python, threads, xnnpack, runtime, eval_pack, no_accuracy, eval_images, runs, min_seconds,
        warmup_runs, warmup_seconds, out, identity, ssh_options):
    """Benchmark MODELS (.tflite files, or a manifest.json; default build/manifest.json) on a target."""
    from android_bench import bench
    from android_bench.device.measure import ProtocolError
    from android_bench.targets import TargetError, parse_target
    models = list(models) or [Path("build") / bench.MANIFEST]
    options = (["-i", identity] if identity else []) + [a for o in ssh_options for a in ("-o", o)]
    on_line, close = _progress_printer()
    try:
        config = BenchConfig(threads=threads, xnnpack=xnnpack, runtime=runtime, eval_images=eval_images,
                             protocol=Protocol(warmup_runs, warmup_seconds, runs, min_seconds))
        where = parse_target(target, python, options)
        resolved = bench.resolve_models(models)
        if no_accuracy:
            eval_pack = None
        elif eval_pack is None:
            eval_pack = resolved[0].parent / bench.EVAL_PACK
        result = bench.run(config, where, resolved, eval_pack, out, on_line=on_line)
    except (ConfigError, ProtocolError, TargetError, bench.BenchError) as e:
        close()
        raise click.ClickException(str(e)) from None
    close()
    click.echo(f"wrote {result.path}")
    if result.failed:
        raise click.ClickException(f"{len(result.failed)} variants failed on {target}: "
                                   f"{', '.join(result.failed)} (errors in {result.path}); the others were measured")


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build/bench"),
              show_default=True, help="reads OUT/results/*.json, writes OUT/report.json, report.md, report.png")
def report(out):
    """Merge every results file into report.json, report.md and report.png."""
    from android_bench import report as merge
    try:
        doc = merge.write(out)
    except merge.ReportError as e:
        raise click.ClickException(str(e)) from None
    click.echo(merge.markdown(doc["results"]))
    click.echo(f"wrote {out / merge.REPORT_JSON}, {out / merge.REPORT_MD} and {out / merge.REPORT_PNG}")


if __name__ == "__main__":
    cli()
