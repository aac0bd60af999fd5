"""python -m quantize --model build/model.keras --out build/quantize -- see ``--help``."""
from __future__ import annotations

import os
from pathlib import Path

import click

from quantize.config import IO, ConfigError, Granularity, QuantizeConfig, Variant

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
    from quantize.convert import QuantizeError
    from quantize.source import SourceError
    return (ConfigError, DataUnavailable, ImageFolderError, IdxError, PreprocessingError,
            QuantizeError, SourceError)


@click.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("build/model.keras"), show_default=True,
              help="trained Keras model; its model.json must sit beside it")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build/quantize"),
              show_default=True, help="writes OUT/<variant>.tflite and OUT/quantize.json")
@click.option("--variants", type=VariantList(), default=",".join(v.value for v in _DEFAULT.variants),
              show_default=True, help="comma-separated subset to build")
@click.option("--io", type=click.Choice([i.value for i in IO]), default=_DEFAULT.io.value,
              show_default=True, help="input/output tensor type of the int8 variant "
                                      "(uint8 for accelerators that want it)")
@click.option("--calibration-size", type=int, default=_DEFAULT.calibration_size, show_default=True,
              help="images of the calibration split (never test) for int8 and int16x8")
@click.option("--granularity", type=click.Choice([g.value for g in Granularity]),
              default=_DEFAULT.granularity.value, show_default=True,
              help="weight scales of the int8 variant: per_tensor is smaller, per_channel "
                   "safer on large ImageNet MobileNets")
@click.option("--data", default=None,
              help="calibration data location if not the one recorded in model.json")
def cli(model_path, out, variants, io, calibration_size, granularity, data):
    """Convert a trained model into float32, float16, dynamic_int8, int8 and int16x8 .tflite files."""
    errors = _user_errors()
    try:
        config = QuantizeConfig(variants=variants, io=io, calibration_size=calibration_size,
                                granularity=granularity)
        from quantize.source import load_source
        load_source(model_path)   # fail on a missing model or model.json before TensorFlow loads
    except errors as e:
        raise click.ClickException(str(e)) from None
    from quantize import convert
    try:
        summary = convert.run(config, model_path, out, data=data)
    except errors as e:
        raise click.ClickException(str(e)) from None
    for v in summary["variants"]:
        click.echo(f"{v['name']:>12}  {v['size_bytes'] / 1024:8.1f} KiB  {out / v['file']}")
    click.echo(f"wrote {out / convert.SUMMARY}")


if __name__ == "__main__":
    cli()
