"""python -m train fit|profile -- see ``python -m train --help``."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pipeline import quiet

from train.config import OUTPUT_STRIDES, Arch, ConfigError, Strategy, TrainConfig, Weights

_DEFAULT = TrainConfig()


def quiet_tensorflow(verbose: int) -> None:
    """TensorFlow's banners out of stderr unless -v (``pipeline.quiet``), and its Python
    loggers at errors only."""
    quiet.install(bool(verbose))
    if verbose:
        return
    import logging

    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _user_errors():
    from imagedata.fashion_mnist import DataUnavailable
    from imagedata.folder import ImageFolderError
    from imagedata.idx import IdxError
    from imagedata.preprocess import PreprocessingError
    from train.checkpoint import CheckpointError, OutInUse
    from train.fit import TrainError
    from train.loop import DistributeError
    from train.weights import WeightsError
    return (ConfigError, DataUnavailable, ImageFolderError, IdxError, PreprocessingError, TrainError,
            CheckpointError, OutInUse, DistributeError, WeightsError)


def _os_error(e: OSError) -> str:
    where = f" '{e.filename}'" if e.filename else ""
    return f"cannot use{where}: {e.strerror or e}"


@click.group()
def cli():
    """Train and profile Keras MobileNets (V1, V2, V3 Small and Large)."""


def _model_options(f):
    f = click.option("--arch", type=click.Choice([a.value for a in Arch]), default=_DEFAULT.arch.value,
                     show_default=True, help="v1: depthwise separable; v2: inverted residuals; v3-small, "
                                             "v3-large: plus squeeze-and-excite and hard-swish")(f)
    f = click.option("--minimalistic", is_flag=True,
                     help="V3 without squeeze-and-excite, hard-swish and 5x5 kernels (for DSPs and NPUs)")(f)
    f = click.option("--alpha", type=float, default=_DEFAULT.alpha, show_default=True,
                     help="width multiplier")(f)
    f = click.option("--resolution", type=int, default=_DEFAULT.resolution, show_default=True,
                     help="input height and width, pixels")(f)
    f = click.option("--output-stride", type=click.Choice([str(s) for s in OUTPUT_STRIDES]), default=None,
                     help="input/final feature map; default 32 from 128 px, less below "
                          "(32 is the published network)")(f)
    return f


@cli.command()
@_model_options
@click.option("--epochs", type=int, default=_DEFAULT.epochs, show_default=True)
@click.option("--batch-size", type=int, default=_DEFAULT.batch_size, show_default=True)
@click.option("--learning-rate", type=float, default=_DEFAULT.learning_rate, show_default=True,
              help="peak learning rate (warm-up, then cosine decay)")
@click.option("--dropout", type=float, default=_DEFAULT.dropout, show_default=True)
@click.option("--bn-momentum", type=float, default=_DEFAULT.bn_momentum, show_default=True,
              help="BatchNorm moving-average momentum; lower settles faster in short runs")
@click.option("--weights", default=_DEFAULT.weights, show_default=True,
              metavar="|".join(w.value for w in Weights) + "|PATH",
              help="start from keras.applications' ImageNet weights (needs network), or from a .keras "
                   "or .weights.h5 file, by layer name and shape")
@click.option("--data", default=_DEFAULT.data, show_default=True,
              help="fashion_mnist, or a folder DIR/<label>/*.jpg (or DIR/train, DIR/val)")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="default: 1 for fashion_mnist, 3 otherwise")
@click.option("--no-augment", is_flag=True, help="train without random flips and translations")
@click.option("--translate", type=int, default=_DEFAULT.translate, show_default=True,
              help="largest random shift, pixels (zero fill)")
@click.option("--strategy", type=click.Choice([s.value for s in Strategy]), default=_DEFAULT.strategy.value,
              show_default=True, help="auto: every GPU if more than one, else one device; multi-worker: "
                                      "the cluster in TF_CONFIG. --batch-size is per replica")
@click.option("--seed", type=int, default=_DEFAULT.seed, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build"),
              show_default=True)
@click.option("--resume", is_flag=True, help="continue an interrupted run from OUT/train/last.keras")
@click.option("--skip-bad-images", is_flag=True, help="skip unreadable images instead of failing")
@click.option("-v", "--verbose", count=True, help="show TensorFlow's own log lines")
def fit(arch, minimalistic, alpha, resolution, output_stride, epochs, batch_size, learning_rate, dropout, bn_momentum,
        weights, data, channels, no_augment, translate, strategy, seed, out, resume, skip_bad_images, verbose):
    """Train from scratch (default) and write OUT/model.keras and OUT/model.json."""
    errors = _user_errors()
    try:
        config = TrainConfig(arch=arch, minimalistic=minimalistic, alpha=alpha, resolution=resolution,
                             output_stride=int(output_stride) if output_stride else None,
                             channels=int(channels) if channels else None, dropout=dropout,
                             bn_momentum=bn_momentum, epochs=epochs, batch_size=batch_size,
                             learning_rate=learning_rate, weights=weights, data=data,
                             augment=not no_augment, translate=translate, strategy=strategy, seed=seed)
        if data != "fashion_mnist":
            from imagedata.folder import layout
            layout(Path(data))   # fail on a bad folder before TensorFlow loads
    except errors as e:
        raise click.ClickException(str(e)) from None
    quiet_tensorflow(verbose)
    from train import fit as fitting
    t0 = time.perf_counter()
    try:
        record = fitting.run(config, out, resume=resume, skip_bad_images=skip_bad_images, log=click.echo)
    except errors as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(_os_error(e)) from None
    except fitting.Interrupted as e:
        click.echo(f"\ninterrupted; {e.where}", err=True)
        raise SystemExit(130)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted before training started; nothing in {out} was changed", err=True)
        raise SystemExit(130)
    if record is None:
        click.echo("this worker's part is done; the chief writes the model")
        return
    minutes, seconds = divmod(time.perf_counter() - t0, 60)
    click.echo(f"test top-1 {record['test_top1']:.4f} (best val top-1 {record['val_top1']:.4f}, "
               f"epoch {record['best_epoch']}); "
               f"{record['timing']['train_images_per_second'] or 0:.0f} train images/s; "
               f"took {int(minutes)}m{seconds:04.1f}s")
    click.echo(f"wrote {out / fitting.MODEL_FILE} and {out / fitting.MODEL_JSON}")


@cli.command()
@_model_options
@click.option("--classes", type=int, default=1000, show_default=True)
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True)
@click.option("--model", "model_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="profile a saved .keras model instead")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def profile(arch, minimalistic, alpha, resolution, output_stride, classes, channels, model_path, as_json):
    """Per-layer parameters and multiply-adds, built without weights."""
    quiet_tensorflow(0)
    from train.profile import format_table, profile_model
    if model_path is not None:
        import keras
        try:
            model = keras.models.load_model(model_path, compile=False)
        except Exception as e:  # keras raises ValueError/OSError/zipfile errors for bad files
            raise click.ClickException(f"cannot load model '{model_path}': {e}") from None
    else:
        if classes < 1:
            raise click.ClickException(f"--classes must be >= 1, got {classes}")
        try:
            config = TrainConfig(arch=arch, minimalistic=minimalistic, alpha=alpha, resolution=resolution,
                                 channels=int(channels),
                                 output_stride=int(output_stride) if output_stride else None, dropout=0.0)
        except ConfigError as e:
            raise click.ClickException(str(e)) from None
        from train.fit import build_model
        model = build_model(config, classes)
    prof = profile_model(model)
    click.echo(json.dumps(prof) if as_json else format_table(prof))


if __name__ == "__main__":
    cli()
