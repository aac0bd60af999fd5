"""python -m quantize --model build/model.keras --out build/quantize -- see ``--help``.

    python -m quantize [convert] --model build/model.keras --out build/quantize [--max-drop 0.5]
    python -m quantize debug --quantized build/quantize --out build/quant_debug
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import click

from pipeline import publish, quiet
from pipeline.quiet import count
from quantize.config import IO, ConfigError, Granularity, InputColor, QuantizeConfig, Variant

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # keep TF's start-up chatter out of the way

_DEFAULT = QuantizeConfig()


class VariantList(click.ParamType):
    """Comma-separated variants, checked against the Variant enum."""
    name = "variants"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        names = [v.strip() for v in str(value).split(",") if v.strip()]
        known = [v.value for v in Variant]
        bad = [n for n in names if n not in known]
        if bad or not names:
            self.fail(f"{value!r}: expected a comma-separated list of {', '.join(known)}", param, ctx)
        return tuple(Variant(n) for n in names)


def _user_errors():
    from imagedata.fashion_mnist import DataUnavailable
    from imagedata.folder import ImageFolderError
    from imagedata.idx import IdxError
    from imagedata.preprocess import PreprocessingError
    from android_bench.device.evaluate import EvaluationError
    from quantize.budget import BudgetError
    from quantize.convert import QuantizeError
    from quantize.debug import DebugError
    from quantize.source import SourceError
    from pipeline.publish import OutInUse, PublishError
    return (BudgetError, ConfigError, DataUnavailable, DebugError, EvaluationError, ImageFolderError,
            IdxError, OutInUse, PreprocessingError, PublishError, QuantizeError, SourceError)



class Stages(click.Group):
    """``convert`` is the default: ``python -m quantize --model ...`` (what the Makefile and
    earlier docs run) stays ``python -m quantize convert --model ...``."""

    def parse_args(self, ctx, args):
        lead = [a for a in args[:1] if a in VERBOSE]     # the group's own option stays in front
        rest = args[len(lead):]
        if rest and rest[0] not in self.commands and rest[0] not in ("--help", "-h"):
            rest = ["convert", *rest]
        elif not rest:
            rest = ["convert"]
        return super().parse_args(ctx, lead + rest)


VERBOSE = ("-v", "--verbose")


@click.group(cls=Stages)
@click.option(*VERBOSE, "verbose", is_flag=True,
              help="keep TensorFlow's and the converter's own log lines (filtered out by default)")
def cli(verbose):
    """Quantize a trained model (convert, the default command) and look at its per-layer error (debug)."""
    quiet.install(verbose)


@cli.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("build/model.keras"), show_default=True,
              help="trained Keras model; its model.json must sit beside it")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build/quantize"),
              show_default=True, help="writes OUT/<variant>.tflite and OUT/quantize.json")
@click.option("--variants", type=VariantList(), default=",".join(v.value for v in _DEFAULT.variants),
              show_default=True, help="comma-separated subset to build")
@click.option("--io", type=click.Choice([i.value for i in IO]), default=_DEFAULT.io.value,
              show_default=True, help="input/output tensor type of the int8 variant: uint8 raw pixels for apps "
                                      "(MediaPipe Tasks), int8 for NPUs and DSPs")
@click.option("--input-color", type=click.Choice([c.value for c in InputColor]), default=_DEFAULT.input_color.value,
              show_default=True, help="rgb: every variant takes RGB frames (a grayscale model converts them to "
                                      "luminance first); as_trained: the channels the model was trained on")
@click.option("--calibration-size", type=int, default=_DEFAULT.calibration_size, show_default=True,
              help="images of the calibration split (never test) for int8 and int16x8")
@click.option("--granularity", type=click.Choice([g.value for g in Granularity]),
              default=_DEFAULT.granularity.value, show_default=True,
              help="weight scales of the int8 variant: per_tensor is smaller, per_channel "
                   "safer on large ImageNet MobileNets")
@click.option("--max-drop", type=float, default=None, metavar="PTS",
              help="accuracy budget of int8: if it loses more than PTS top-1 points against "
                   "float32 on the validation split, keep its most sensitive layers in float32 "
                   "(chosen greedily from the per-layer error)  [default: no budget]")
@click.option("--data", default=None,
              help="calibration data location if not the one recorded in model.json")
def convert(model_path, out, variants, io, input_color, calibration_size, granularity, max_drop, data):
    """Convert a trained model into float32, float16, dynamic_int8, int8 and int16x8 .tflite files."""
    errors = _user_errors()
    try:
        config = QuantizeConfig(variants=variants, io=io, input_color=input_color,
                                calibration_size=calibration_size, granularity=granularity, max_drop=max_drop)
        from quantize.source import load_source
        load_source(model_path)   # fail on a missing model or model.json before TensorFlow loads
    except errors as e:
        raise click.ClickException(str(e)) from None
    from quantize import convert as stage
    try:
        summary = stage.run(config, model_path, out, data=data)
    except (*errors, OSError) as e:
        raise click.ClickException(publish.message(e)) from None
    for v in summary["variants"]:
        kept = f"  ({count(len(v['float_layers']), 'layer')} in float32)" if v.get("float_layers") else ""
        fallback = v["converter"].get("float_ops")
        if fallback:
            ops = ", ".join(f"{n}x {op}" for op, n in Counter(f["op"] for f in fallback).items())
            kept = f"  ({ops} in float32: no {v['name']} kernel)"
        click.echo(f"{v['name']:>12}  {v['size_bytes'] / 1024:8.1f} KiB  {out / v['file']}{kept}")
    if "accuracy_budget" in summary:
        click.echo(f"accuracy budget: {summary['accuracy_budget']['message']}")
    click.echo(f"wrote {out / stage.SUMMARY}")


@cli.command()
@click.option("--quantized", type=click.Path(file_okay=False, path_type=Path), default=Path("build/quantize"),
              show_default=True, help="where python -m quantize wrote int8.tflite and quantize.json")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build/quant_debug"),
              show_default=True, help="writes OUT/quant_debug.json, .md and .png")
@click.option("--images", type=int, default=None,
              help="calibration images to measure over  [default: all the int8 recipe used]")
@click.option("--data", default=None, help="data location if not the one recorded in model.json")
def debug(quantized, out, images, data):
    """Per-layer error of the full-int8 model (RMSE / scale, max abs error), worst layers first."""
    errors = _user_errors()
    from quantize import debug as stage
    try:
        record = stage.run(quantized, out, images=images, data=data)
    except (*errors, OSError) as e:
        raise click.ClickException(publish.message(e)) from None
    rows = [stage.LayerError(**r) for r in record["layers"]]
    click.echo(stage.table(rows[:10], record["float_layers"]))
    if len(rows) > 10:
        click.echo(f"... {count(len(rows) - 10, 'more layer')} in {out / (stage.REPORT + '.md')}")
    click.echo(f"wrote {', '.join(stage.REPORT + e for e in ('.json', '.md', '.png'))} in {out}")


if __name__ == "__main__":
    cli()
