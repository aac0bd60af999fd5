"""python -m export run|table|classify -- see ``python -m export --help``."""
from __future__ import annotations

from pathlib import Path

import click

from export.config import ConfigError, ExportConfig
from pipeline import publish, quiet

_DEFAULT = ExportConfig()


def _user_errors():
    from android_bench.device.evaluate import EvaluationError
    from android_bench.device.tflite_metadata import MetadataError
    from export.bundle import ExportError
    from export.model_metadata import MetadataMismatch
    from export.verify import VerifyError
    from pipeline.publish import OutInUse, PublishError
    from imagedata.fashion_mnist import DataUnavailable
    from imagedata.folder import ImageFolderError
    from imagedata.idx import IdxError
    from imagedata.preprocess import PreprocessingError
    from quantize.source import SourceError
    return (ConfigError, DataUnavailable, EvaluationError, ExportError, ImageFolderError, IdxError,
            MetadataError, MetadataMismatch, OutInUse, PreprocessingError, PublishError, SourceError, VerifyError)



@click.group()
def cli():
    """Package quantized .tflite variants with their metadata, and measure them."""


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build"),
              show_default=True, help="writes OUT/<variant>.tflite, labels.txt, eval_pack.npz, manifest.json")
@click.option("--quantized", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where python -m quantize wrote quantize.json  [default: OUT/quantize]")
@click.option("--eval-size", type=int, default=None,
              help="test images in eval_pack.npz  [default: the whole test split]")
@click.option("--batch-size", type=int, default=_DEFAULT.batch_size, show_default=True,
              help="images per interpreter call while measuring top-1")
@click.option("--num-threads", type=int, default=None, help="interpreter threads [default: the runtime's]")
@click.option("--data", default=None, help="test data location if not the one the model was trained on")
@click.option("--license", "license_", default=_DEFAULT.license, show_default=True,
              help="the models' license, written in their standard metadata")
@click.option("-v", "--verbose", is_flag=True, help="keep TensorFlow's and the interpreters' banners")
def run(out, quantized, eval_size, batch_size, num_threads, data, license_, verbose):
    """Write OUT/<variant>.tflite with metadata, labels.txt, eval_pack.npz and manifest.json."""
    quiet.install(verbose)
    errors = _user_errors()
    quantized = quantized or out / "quantize"
    try:
        config = ExportConfig(eval_size=eval_size, batch_size=batch_size, num_threads=num_threads,
                              license=license_)
        from export import bundle
        manifest = bundle.run(config, quantized, out, data=data)
    except (*errors, OSError) as e:
        raise click.ClickException(publish.message(e)) from None
    click.echo(bundle.table(manifest))
    click.echo(f"wrote {', '.join(e['file'] for e in manifest['variants'])}, {bundle.LABELS}, "
               f"{bundle.EVAL_PACK} and {bundle.MANIFEST} in {out}")


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path),
                default=Path("build/manifest.json"))
def table(manifest):
    """Print the README table of a manifest.json, once its files are checked against it."""
    from export import bundle, verify
    try:
        click.echo(bundle.table(verify.manifest(manifest)))
    except (verify.VerifyError, OSError) as e:
        raise click.ClickException(publish.message(e)) from None


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--top", type=int, default=3, show_default=True)
def classify(model, images, top):
    """Classify image files with MODEL.tflite alone (labels and preprocessing from its metadata)."""
    from export.classify import classify as run_classify
    try:
        results = run_classify(model, list(images), top)
    except (*_user_errors(), OSError) as e:
        raise click.ClickException(publish.message(e)) from None
    for path, best in zip(images, results):
        click.echo(f"{path}: " + ", ".join(f"{label} {score:.3f}" for label, score in best))


if __name__ == "__main__":
    cli()
