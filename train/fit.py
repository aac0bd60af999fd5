"""Train a MobileNet and write ``model.keras`` with its provenance in ``model.json``.

    python -m train fit --arch v1 --alpha 0.5 --resolution 32 --out build/

The recipe (defaults in ``TrainConfig``): AdamW with a linear warm-up to the
peak learning rate and cosine decay to zero, random flips and translations,
BatchNorm momentum 0.99. Label smoothing and dropout are available but off:
in 21 epochs on two cores the model still underfits (training top-1 stays
below validation top-1), so more regularization only slows it down.

The input (``train.pipeline``) reads uint8 batches in a seeded order; the loop
(``train.loop``) runs every strategy, one device to several machines, with the
flips and shifts inside the compiled step, ``STEPS_PER_EXECUTION`` steps per
call. Same seed and machine, same model; a resumed run is the run that was not
interrupted.

Checkpoints live in ``OUT/train/`` (``train.checkpoint``): ``last.keras`` after
every epoch, with the run's state inside, and ``best.keras`` by validation
top-1. ``--resume`` continues from ``last.keras``; under ``--strategy
multi-worker`` a restarted cluster continues by itself. Only the chief writes.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from imagedata.dataset import Dataset, load_dataset
from imagedata.preprocess import Preprocessing
from train import checkpoint
from train.config import Arch, TrainConfig

MODEL_FILE = "model.keras"
MODEL_JSON = "model.json"
CKPT_DIR = "train"
# Measured in benchmarks/train_throughput.py (README): flips and shifts inside the step
# rather than in the tf.data map, and 8 steps per compiled call rather than 1.
STEPS_PER_EXECUTION = 8
AUGMENT_IN_STEP = True


class TrainError(RuntimeError):
    pass


class ResumeError(TrainError):
    pass


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what is saved: ``where`` is a sentence that is true when it is read."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


def preprocessing_for(config: TrainConfig) -> Preprocessing:
    return Preprocessing(resolution=config.resolution, channels=config.channels)


def build_model(config: TrainConfig, classes: int):
    """The architecture alone, freshly initialized; ``train.weights`` loads starting weights."""
    from train.mobilenet import mobilenet_v1, mobilenet_v2
    from train.mobilenet_v3 import mobilenet_v3_large, mobilenet_v3_small
    builder = {Arch.V1: mobilenet_v1, Arch.V2: mobilenet_v2,
               Arch.V3_SMALL: mobilenet_v3_small, Arch.V3_LARGE: mobilenet_v3_large}[config.arch]
    v3 = {"minimalistic": config.minimalistic} if config.arch.v3 else {}
    model = builder((config.resolution, config.resolution, config.channels), classes,
                    alpha=config.alpha, dropout=config.dropout, bn_momentum=config.bn_momentum,
                    output_stride=config.output_stride, **v3)
    return model


def compile_model(model, config: TrainConfig, steps_per_epoch: int, replicas: int = 1):
    """AdamW, warm-up then cosine decay, peak ``learning_rate * replicas`` (TrainConfig's rule)."""
    import keras
    total = steps_per_epoch * config.epochs
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    peak = config.learning_rate * replicas
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 100, decay_steps=max(total - warmup, 1),
        alpha=0.0, warmup_target=peak, warmup_steps=warmup)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    model.optimizer.build(model.trainable_variables)


def versions() -> dict:
    import keras
    import tensorflow as tf
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__}


def machine() -> dict:
    from android_bench.device.fingerprint import cpu_model   # the device runner reads it the same way
    return {"hostname": platform.node(), "machine": platform.machine(),
            "cpu": cpu_model() or platform.processor(), "cores": os.cpu_count(),
            "os": platform.platform()}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _run_id(model_json: Path) -> str | None:
    try:
        return json.loads(model_json.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def _start_state(config: TrainConfig, ckpt: Path, resume: bool, cluster, global_batch: int, log) -> dict:
    """The chief's state for this session: fresh, or the last complete epoch's."""
    found = checkpoint.resumable(ckpt)
    if not resume and cluster.strategy == "multi-worker" and found:
        # A restarted cluster runs the same command: continue a run of this config that has not
        # written its model.json yet, as Keras' BackupAndRestore does.
        resume = found[0]["config"] == config.to_dict() and _run_id(ckpt.parent / MODEL_JSON) != found[0]["run_id"]
    if not resume:
        return {"run_id": uuid.uuid4().hex, "config": config.to_dict(), "global_batch": global_batch,
                "history": [], "best_val_top1": -1.0, "best_epoch": 0, "epochs_done": 0,
                "resumed_after_epochs": [], "sessions": [], "weights": None}
    if found is None:
        old = (" (its last.keras has no state inside: written by an older version)"
               if (ckpt / checkpoint.LAST).exists() else "")
        raise ResumeError(f"nothing to resume in {ckpt}: no complete last.keras{old} "
                          f"(run without --resume to start fresh)")
    state, _ = found
    if state["config"] != config.to_dict():
        diff = {k: (state["config"].get(k), v) for k, v in config.to_dict().items()
                if state["config"].get(k) != v}
        raise ResumeError(f"the checkpoint in {ckpt} was trained with another config "
                          f"(saved, now): {diff}; run without --resume to start fresh")
    if state["global_batch"] != global_batch:
        raise ResumeError(f"the checkpoint in {ckpt} was trained with a global batch of "
                          f"{state['global_batch']}, this cluster gives {global_batch} "
                          f"(batch_size x replicas): resume on as many devices")
    checkpoint.repair(ckpt, state)   # a kill between last.keras and best.keras / state.json
    state["resumed_after_epochs"].append(state["epochs_done"])
    log(f"resuming after epoch {state['epochs_done']} of {config.epochs} "
        f"(best val top-1 so far {state['best_val_top1']:.4f})")
    return state


def _progress(verbose: int, steps: int, epoch: int, epochs: int):
    if verbose != 1:
        return None, None
    from tqdm import tqdm
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False, file=sys.stderr)

    def update(k, loss):
        bar.update(k)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    return bar, update


def run(config: TrainConfig, out: Path, resume: bool = False, dataset: Dataset | None = None,
        cache_dir=None, skip_bad_images: bool = False, verbose: int | None = None,
        steps_per_execution: int = STEPS_PER_EXECUTION, augment_in_step: bool = AUGMENT_IN_STEP,
        log=print) -> dict | None:
    """Train, keep the best checkpoint, evaluate it on test, write model.keras + model.json.

    ``dataset`` skips loading (tests pass tiny ones). ``verbose``: 0 quiet, 1 a progress bar
    and a line per epoch, 2 the lines only; None: 1 on a terminal, else 2. Returns the
    model.json dict, or None on a worker that is not the chief.
    """
    from tqdm import tqdm

    from train.loop import make_strategy
    from train.weights import weights_file

    t_start = time.perf_counter()
    strategy, cluster = make_strategy(config.strategy, log)   # before any other TensorFlow op
    p = preprocessing_for(config)
    if dataset is None:
        dataset = load_dataset(config.data, p, seed=config.seed, cache_dir=cache_dir,
                               skip_bad_images=skip_bad_images, progress=partial(tqdm, disable=None))
    global_batch = config.batch_size * cluster.replicas
    steps = len(dataset.train) // global_batch
    if steps < 1:
        replicas = f"{cluster.replicas} replica{'s' if cluster.replicas > 1 else ''}"
        raise TrainError(f"the global batch ({config.batch_size} per replica x {replicas} = "
                         f"{global_batch}) is larger than the training split ({len(dataset.train)} "
                         f"images); lower --batch-size")
    if cluster.is_chief:
        weights_file(config)   # a missing file fails here, before OUT is touched
    if verbose is None:
        verbose = 1 if sys.stderr.isatty() else 2
    session = _Session(config, Path(out), dataset, p, strategy, cluster, global_batch, steps, verbose,
                       steps_per_execution, augment_in_step, log, t_start)
    if not cluster.is_chief:
        return session.train(resume)
    with checkpoint.lock(Path(out)):
        return session.train(resume)


@dataclass
class _Session:
    """One process's part of a run, from the model's start to model.json."""
    config: TrainConfig
    out: Path
    dataset: Dataset
    p: Preprocessing
    strategy: object
    cluster: object                  # train.loop.Cluster
    global_batch: int
    steps: int                       # per epoch
    verbose: int
    steps_per_execution: int
    augment_in_step: bool
    log: object
    t_start: float                   # perf_counter() at the session's start
    state: dict | None = None        # the chief's; None on the other workers

    @property
    def ckpt(self) -> Path:
        return self.out / CKPT_DIR

    def train(self, resume: bool) -> dict | None:
        import tensorflow as tf

        from train.loop import DistributeError, barrier
        try:
            if self.cluster.is_chief:
                checkpoint.remove_partials(self.ckpt)
                self.state = _start_state(self.config, self.ckpt, resume, self.cluster, self.global_batch,
                                          self.log)
            loop, first = self._prepare()
            fit_seconds = self._epochs(loop, first)
            record = self._finish(fit_seconds) if self.cluster.is_chief else None
            barrier(self.strategy, self.cluster)
            return record
        except KeyboardInterrupt:
            raise Interrupted(self._saved() if self.cluster.is_chief else "this worker saves nothing") from None
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
                tf.errors.CancelledError) as e:
            if self.cluster.workers <= 1:
                raise
            first_line = str(e).strip().splitlines()[0][:200]
            where = f"; {self._saved(hint=False)}" if self.cluster.is_chief else ""
            raise DistributeError(f"the cluster lost a task ({type(e).__name__}: {first_line}). Restart "
                                  f"every task with the same command: training continues after the last "
                                  f"finished epoch{where}") from None

    def _prepare(self):
        """The model and optimizer under the strategy, as the chief starts them (fresh, from
        --weights, or from last.keras), given to every worker. Returns (Loop, first epoch)."""
        import keras

        from train import weights
        from train.loop import Loop, broadcast_from_chief

        config, cluster, state = self.config, self.cluster, self.state
        with self.strategy.scope():
            keras.utils.set_random_seed(config.seed)
            model = build_model(config, len(self.dataset.labels))
            compile_model(model, config, self.steps, cluster.replicas)
        # Outside the scope: what the chief alone loads must create no distributed variable.
        if cluster.is_chief and state["epochs_done"]:
            checkpoint.restore(model, self.ckpt / checkpoint.LAST)
        elif cluster.is_chief and not state["history"]:
            state["weights"] = weights.load_weights(model, config)
            if state["weights"]:
                self.log(weights.describe(state["weights"]))
        with self.strategy.scope():
            broadcast_from_chief(self.strategy, cluster, model.weights + model.optimizer.variables)
            first = int(model.optimizer.iterations.numpy()) // self.steps
            loop = Loop(self.strategy, model, self.p, self.global_batch, config.augment, self.augment_in_step,
                        config.label_smoothing)
        if cluster.is_chief and first != state["epochs_done"]:
            raise ResumeError(f"{self.ckpt / checkpoint.LAST} holds {first} epochs of optimizer steps but "
                              f"its state says {state['epochs_done']}: run without --resume to start fresh")
        return loop, first

    def _epochs(self, loop, first: int) -> float:
        """Epochs first+1..config.epochs; the chief validates and commits each. Returns seconds."""
        from train.pipeline import EpochPlan, replica_batches

        config, cluster, state = self.config, self.cluster, self.state
        plan = EpochPlan(len(self.dataset.train), config.seed, config.translate, config.augment)
        batches = replica_batches(self.dataset.train, plan, self.global_batch, first, config.epochs,
                                  self.steps, augment_in_data=config.augment and not self.augment_in_step)
        iterator = iter(self.strategy.distribute_datasets_from_function(batches))
        if cluster.is_chief:
            state["sessions"].append({"started": _now(), "task": cluster.task, "first_epoch": first + 1,
                                      "last_epoch": first, "seconds": 0.0})
        t_fit = time.perf_counter()
        for epoch in range(first + 1, config.epochs + 1):
            checkpoint.test_hook("epoch-start", epoch)
            t0 = time.perf_counter()
            bar, update = _progress(self.verbose, self.steps, epoch, config.epochs)
            try:
                loss, top1 = loop.train_epoch(iterator, self.steps, self.steps_per_execution, update)
            finally:
                if bar:
                    bar.close()
            train_seconds = time.perf_counter() - t0
            rate = f"{self.steps * self.global_batch / train_seconds:.0f} images/s"
            if not cluster.is_chief:
                if self.verbose:
                    self.log(f"epoch {epoch}/{config.epochs}: loss {loss:.4f}; {train_seconds:.1f} s, "
                             f"{rate} ({cluster.task})")
                continue
            val_loss, val_top1 = loop.evaluate(self.dataset.val)
            entry = {"epoch": epoch, "loss": loss, "accuracy": top1, "val_loss": val_loss,
                     "val_accuracy": val_top1, "seconds": time.perf_counter() - t0,
                     "train_seconds": train_seconds}
            new_best = val_top1 > state["best_val_top1"]
            state["history"].append(entry)
            if new_best:
                state["best_val_top1"], state["best_epoch"] = val_top1, epoch
            state["epochs_done"] = epoch
            state["sessions"][-1].update(last_epoch=epoch, seconds=time.perf_counter() - self.t_start)
            checkpoint.commit(loop.model, self.ckpt, state, new_best)
            if self.verbose:
                self.log(f"epoch {epoch}/{config.epochs}: loss {loss:.4f}, top-1 {top1:.4f}, val top-1 "
                         f"{val_top1:.4f}{' (best)' if new_best else ''}; {entry['seconds']:.1f} s, {rate}")
        return time.perf_counter() - t_fit

    def _saved(self, hint: bool = True) -> str:
        """Where the last finished epoch is, true at the moment it is read."""
        found = checkpoint.resumable(self.ckpt)
        if found is None:
            return "no epoch was saved, there is nothing to resume"
        saved, last = found
        if self.state is None or saved.get("run_id") != self.state.get("run_id"):
            return (f"no epoch of this run finished; {self.ckpt} still holds the previous run's "
                    f"checkpoints (epoch {saved['epochs_done']} of {saved['config'].get('epochs')})")
        return (f"the last finished epoch ({saved['epochs_done']} of {self.config.epochs}) is in {last}"
                + (". Continue with the same options and --resume (make train RESUME=1)" if hint else ""))

    def _finish(self, fit_seconds: float) -> dict:
        """Test top-1 of the best checkpoint; model.keras and model.json, each published whole."""
        import keras

        from quantize import files
        from train.loop import Evaluator
        from train.profile import profile_model

        config, state, out = self.config, self.state, self.out
        best = keras.models.load_model(self.ckpt / checkpoint.BEST, compile=False)
        _, test_top1 = Evaluator(best, self.p).evaluate(self.dataset.test)
        prof = profile_model(best)
        history = state["history"]
        train_seconds = sum(h["train_seconds"] for h in history)
        state["sessions"][-1]["seconds"] = time.perf_counter() - self.t_start
        record = {
            "artifact": MODEL_FILE,
            "config": config.to_dict(),
            "labels": self.dataset.labels,
            "preprocessing": self.p.to_dict(),
            "data": self.dataset.describe(),
            "model": {"input_shape": list(self.p.input_shape), "classes": len(self.dataset.labels),
                      "params": prof["params"], "macs": prof["macs"]},
            "history": history,
            "best_epoch": state["best_epoch"],
            "val_top1": state["best_val_top1"],
            "test_top1": float(test_top1),
            "run_id": state["run_id"],
            "resumed_after_epochs": state["resumed_after_epochs"],
            "weights": state["weights"],
            "distribution": {**self.cluster.to_dict(), "global_batch": self.global_batch,
                             "steps_per_epoch": self.steps,
                             "peak_learning_rate": config.learning_rate * self.cluster.replicas},
            "timing": {"total_seconds": sum(s["seconds"] for s in state["sessions"]),
                       "epochs_seconds": sum(h["seconds"] for h in history),
                       "fit_seconds_this_run": fit_seconds,
                       "sessions": state["sessions"],
                       "train_images_per_second": (self.steps * self.global_batch * len(history)
                                                   / train_seconds) if train_seconds else None},
            "versions": versions(),
            "machine": machine(),
            "created": _now(),
        }
        tmp = out / f".model.{os.getpid()}.partial.keras"
        try:
            try:
                best.save(tmp)
                os.replace(tmp, out / MODEL_FILE)
            except OSError as e:
                raise checkpoint.CheckpointError(f"cannot write '{out / MODEL_FILE}': {e.strerror or e}") from None
        finally:
            tmp.unlink(missing_ok=True)
        try:
            files.write_json(out / MODEL_JSON, record)
        except OSError as e:
            raise checkpoint.CheckpointError(f"cannot write '{out / MODEL_JSON}': {e.strerror or e}") from None
        return record
