"""python -m android_bench run|report|doctor|parse|pi-emu|sweep -- see ``python -m android_bench --help``."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from android_bench.config import BenchConfig, ConfigError, Runtime, Xnnpack
from android_bench.device.measure import Protocol
from android_bench.pi_emu import BOOKWORM, USERLANDS
from pipeline import publish, quiet
from pipeline.quiet import count

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
    """stderr lines of the runner: on a terminal ``[k/N] ...`` drive a progress bar, the rest is shown
    as is; in a log every line is one line, no bar."""
    if not quiet.on_terminal():
        return (lambda line: click.echo(line, err=True)), (lambda: None)
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
@click.option("-v", "--verbose", is_flag=True,
              help="keep TensorFlow's and the interpreters' own log lines (filtered out by default)")
def cli(verbose):
    """Latency and accuracy of the exported variants, measured on the target itself."""
    quiet.install(verbose)


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", default="local", show_default=True,
              help="'local', or ssh://[user@]host[:port] (key login; ssh runs with BatchMode=yes), or adb[:SERIAL] "
                   "(an Android phone, measured with TFLite's benchmark_model), or pi-emu (the emulated arm64 Pi "
                   "of `make pi-emu`, once per runtime) or chroot://PATH (a root file system here)")
@click.option("--python", "python", default=None,
              help="the target's Python  [default: this one for local, python3 over ssh; on a phone, for accuracy "
                   "only: python3 if the adb shell has one]")
@click.option("--threads", type=ThreadList(), default=",".join(map(str, _DEFAULT.threads)), show_default=True,
              help="interpreter thread counts to sweep")
@click.option("--xnnpack", type=click.Choice([x.value for x in Xnnpack]), default=_DEFAULT.xnnpack.value,
              show_default=True, help="XNNPACK delegate on, off, or both for comparison")
@click.option("--runtime", type=click.Choice([r.value for r in Runtime]), default=_DEFAULT.runtime.value,
              show_default=True, help="interpreter on the target; auto: ai_edge_litert, tflite_runtime, tensorflow, "
                                      "then MediaPipe Tasks' classify() where installed; mediapipe: only that")
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
@click.option("--benchmark-binary", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              envvar="ANDROID_BENCH_BENCHMARK_MODEL", show_envvar=True,
              help="adb targets: TFLite's benchmark_model for the phone's ABI (android_aarch64_benchmark_model)")
@click.option("--gpu", is_flag=True, help="adb targets: also measure with the GPU delegate (--use_gpu)")
@click.option("--nnapi", is_flag=True, help="adb targets: also measure with the NNAPI delegate (--use_nnapi)")
@click.option("--op-profiling", is_flag=True, help="adb targets: per-op timings (--enable_op_profiling) in report.md")
@click.option("--cpu-mask", default=None, help="adb targets: run under `taskset MASK` (hex, e.g. f0 = CPUs 4-7)")
@click.option("--big-cores", is_flag=True, help="adb targets: pin to the CPUs with the highest max clock")
def run(models, target, python, threads, xnnpack, runtime, eval_pack, no_accuracy, eval_images, runs, min_seconds,
        warmup_runs, warmup_seconds, out, identity, ssh_options, benchmark_binary, gpu, nnapi, op_profiling,
        cpu_mask, big_cores):
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
        from android_bench.adb import AdbTarget
        if isinstance(where, AdbTarget):   # TFLite's benchmark_model on a phone
            from android_bench import adb_bench
            phone = adb_bench.PhoneOptions(benchmark_binary, gpu, nnapi, op_profiling, cpu_mask, big_cores, python)
            results = [adb_bench.run(config, where, resolved, eval_pack, out, phone, on_line=on_line)]
        else:   # the device runner; on pi-emu once per runtime installed there, each into its own results file
            results = []
            for one_target, one_config, optional in bench.per_runtime(where, config, python):
                if results:   # a fresh progress bar for the next runtime
                    close()
                    on_line, close = _progress_printer()
                results.append(bench.run(one_config, one_target, resolved, eval_pack, out, on_line=on_line,
                                         optional=optional))
                on_line(f"wrote {results[-1].path}" if results[-1].path else f"skipped {results[-1].skipped}")
    except (ConfigError, ProtocolError, TargetError, bench.BenchError, OSError) as e:
        close()
        raise click.ClickException(publish.message(e)) from None
    close()
    failed = [result for result in results if result.failed]
    if failed:
        raise click.ClickException("; ".join(
            f"{count(len(r.failed), 'variant')} failed on {target}: {', '.join(r.failed)} (errors in {r.path})"
            for r in failed) + "; the others were measured")


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build/bench"),
              show_default=True, help="reads OUT/results/*.json, writes OUT/report.json, report.md, report.png")
def report(out):
    """Merge every results file into report.json, report.md and report.png."""
    from android_bench import report as merge
    try:
        doc = merge.write(out)
    except (merge.ReportError, OSError) as e:
        raise click.ClickException(publish.message(e)) from None
    click.echo(merge.markdown(doc["results"]))
    click.echo(f"wrote {out / merge.REPORT_JSON}, {out / merge.REPORT_MD} and {out / merge.REPORT_PNG}")


@cli.command()
@click.option("--target", default="local", show_default=True, help="as for `run`: local, ssh://[user@]host[:port], ...")
@click.option("--python", "python", default=None, help="the target's Python  [default: as for `run`]")
@click.option("--runtime", type=click.Choice([r.value for r in Runtime if r is not Runtime.MEDIAPIPE]),
              default=_DEFAULT.runtime.value, show_default=True,
              help="the runtime to judge; auto: the one `run` would pick")
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="also show which ops of this .tflite XNNPACK takes on the target (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="print the checklist and the facts as JSON")
@click.option("-i", "--identity", type=click.Path(dir_okay=False, exists=True), default=None,
              help="ssh private key (ssh -i)")
@click.option("-o", "--ssh-option", "ssh_options", multiple=True, help="ssh -o option, repeatable")
def doctor(target, python, runtime, models, as_json, identity, ssh_options):
    """Check a target before a benchmark: runtimes, numpy, XNNPACK int8, CPU features, governor, heat.

    Exits 1 when a FAIL item would stop `run`."""
    import json

    from android_bench import doctor as checkup
    from android_bench.targets import TargetError, parse_target
    options = (["-i", identity] if identity else []) + [a for o in ssh_options for a in ("-o", o)]
    try:
        where = parse_target(target, python, options)
        diagnosis = checkup.diagnose(where, runtime, models, python=python)
    except (TargetError, checkup.DoctorError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(diagnosis.to_dict(), indent=1) if as_json else diagnosis.text())
    if diagnosis.failed:
        sys.exit(1)


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--json", "as_json", is_flag=True, help="print every parsed field as JSON")
def parse(file, as_json):
    """Parse TFLite benchmark_model output (a file, or - for stdin; adb logcat lines too)."""
    import json

    from android_bench import benchmark_model
    try:
        parsed = benchmark_model.parse(file.read())
    except (benchmark_model.BenchmarkOutputError, OSError) as e:
        raise click.ClickException(f"{file.name}: {publish.message(e)}") from None
    click.echo(json.dumps(parsed, indent=1) if as_json else benchmark_model.summary(parsed))


@cli.command("pi-emu")
@click.option("--release", type=click.Choice(list(USERLANDS)), default=BOOKWORM.suite, show_default=True,
              help="Debian release: bookworm (Python 3.11; --target pi-emu, pi5-emu) or bullseye "
                   "(Python 3.9, as on Raspberry Pi OS Bullseye; --target pi-emu-bullseye)")
@click.option("--check", is_flag=True, help="only check that this machine can emulate arm64 (root, qemu, binfmt_misc)")
@click.option("--rebuild", is_flag=True, help="build it again even when the cached one is complete")
@click.option("--mirror", default=None, help="Debian mirror  [default: the one apt uses here, else deb.debian.org]")
def pi_emu(release, check, rebuild, mirror):
    """Build the emulated Raspberry Pi once (arm64 Debian + tflite-runtime + ai-edge-litert under qemu).

    Cached under ~/.cache/mobilenet-deploy/pi-emu; then `run --target pi-emu` (or pi-emu-bullseye)."""
    from android_bench import pi_emu as emu
    userland = emu.USERLANDS[release]
    try:
        host = emu.check_host()
        if check:
            click.echo(f"this machine can emulate arm64: {host['qemu_version'] or 'native aarch64'}, "
                       f"binfmt_misc {host['binfmt']}")
            return
        stamp = emu.build(userland, mirror, force=rebuild)
    except emu.PiEmuError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{userland.root}: Debian {stamp['recipe']['suite']} {stamp['recipe']['arch']}, built {stamp['built']}, "
               + ", ".join(f"{name} {v['runtime_version']} (Python {v['python_version']}, numpy {v['numpy']})"
                           for name, v in stamp["venvs"].items()))


@cli.command()
@click.argument("grid", type=click.Path(dir_okay=False, path_type=Path), default=Path("sweep.toml"))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build/sweep"),
              show_default=True, help="OUT/<config-id>/ per configuration; OUT/report.json, report.md, report.png")
@click.option("--target", default=None, help="where to benchmark  [default: the grid's [bench] target, else local]")
@click.option("--python", "python", default=None, help="the target's Python  [default: the grid's, else as for run]")
@click.option("--threads", type=ThreadList(), default=None, help="thread counts  [default: the grid's]")
@click.option("--remeasure", is_flag=True, help="benchmark again even where the results are up to date")
@click.option("-i", "--identity", type=click.Path(dir_okay=False, exists=True), default=None,
              help="ssh private key (ssh -i)")
@click.option("-o", "--ssh-option", "ssh_options", multiple=True, help="ssh -o option, repeatable")
def sweep(grid, out, target, python, threads, remeasure, identity, ssh_options):
    """Train, quantize, export and benchmark every configuration of GRID (a TOML file; default
    sweep.toml), reusing the stages whose inputs did not change; report the Pareto front."""
    import dataclasses
    import os
    import time

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # training and conversion run in this process
    from android_bench.sweep import grid as sweep_grid
    from android_bench.sweep import report as sweep_report
    from android_bench.sweep import stages
    from android_bench.targets import TargetError, parse_target
    from imagedata.folder import ImageFolderError, layout
    t0 = time.perf_counter()
    options = (["-i", identity] if identity else []) + [a for o in ssh_options for a in ("-o", o)]
    try:
        config = sweep_grid.load(grid)
        if threads:
            config = dataclasses.replace(config, bench=dataclasses.replace(config.bench, threads=threads))
        config = dataclasses.replace(config, target=target or config.target, python=python or config.python)
        if config.target == "adb" or config.target.startswith("adb:"):
            raise sweep_grid.GridError("the sweep measures with the Python device runner; a phone (adb) is "
                                       "measured with benchmark_model: run `python -m android_bench run --target "
                                       "adb OUT/<config-id>/manifest.json` for the configurations you want")
        where = parse_target(config.target, config.python, options)
        for data in sorted({c.train.data for c in config.configurations()} - {"fashion_mnist"}):
            layout(Path(data))   # a wrong folder fails now, not after the first configuration trained
        n = len(config.configurations())
        click.echo(f"{count(n, 'configuration')} from {grid}, benchmarked on {config.target}; folders in {out}",
                   err=True)
        entries = stages.run(config, out, where, remeasure=remeasure, log=lambda line: click.echo(line, err=True))
        doc = sweep_report.write(config, entries, out)
    except (sweep_grid.GridError, ConfigError, TargetError, ImageFolderError, OSError) as e:
        raise click.ClickException(publish.message(e)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the finished stages are kept in {out}/<config-id>/done/ and training from its "
                   f"last epoch: run the same command again to continue.", err=True)
        raise SystemExit(130)
    click.echo(sweep_report.markdown(doc))
    minutes, seconds = divmod(time.perf_counter() - t0, 60)
    click.echo(f"wrote {out / sweep_report.REPORT_JSON}, {out / sweep_report.REPORT_MD} and "
               f"{out / sweep_report.REPORT_PNG}; took {int(minutes)}m{seconds:04.1f}s")
    failed = [e for e in entries if e.error]
    if failed:
        raise click.ClickException("; ".join(f"{e.configuration.id}: {e.error}" for e in failed))


if __name__ == "__main__":
    cli()
