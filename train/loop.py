"""One training loop for every tf.distribute strategy: one device, MirroredStrategy, multi-worker.

    strategy, cluster = make_strategy(Strategy.AUTO)
    with strategy.scope():
        model = ...; model.compile(optimizer=..., ...)
        loop = Loop(strategy, model, preprocessing, global_batch, augment=True)
    loss, top1 = loop.train_epoch(iterator, steps, steps_per_execution=8)

Why not ``model.fit``: under MultiWorkerMirroredStrategy Keras 3's fit fails
("Attempt to convert a value (PerReplica...)", keras-team/keras#20585), and a
loop for some strategies and fit for the others would be two ways to train. This
loop is ``strategy.run`` of one step (forward, loss averaged over the *global*
batch, gradients all-reduced by the Keras optimizer), ``steps_per_execution``
steps to a compiled call (a ``tf.while_loop``), so Python runs once per k steps.

Validation and test run on the calling worker's own device, outside
``strategy.run``: no collective op, so only the chief needs to evaluate.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import partial

from train.config import Strategy
from train.pipeline import augment, normalize


class DistributeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    """Where this process stands: ``replicas`` counts devices over all workers."""
    strategy: str            # what ran: "default", "mirrored" or "multi-worker"
    workers: int
    task: str                # "worker:1" under TF_CONFIG, else "local"
    is_chief: bool
    replicas: int
    devices: tuple

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "workers": self.workers, "task": self.task,
                "replicas": self.replicas, "devices": list(self.devices)}


def _tf_config() -> dict | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        config["cluster"], config["task"]["type"], config["task"]["index"]   # noqa: B018 (shape check)
    except (ValueError, KeyError, TypeError):
        raise DistributeError(f"TF_CONFIG must be JSON like {{\"cluster\": {{\"worker\": [\"host1:2222\", "
                              f"\"host2:2222\"]}}, \"task\": {{\"type\": \"worker\", \"index\": 0}}}}, "
                              f"got {raw[:200]!r}") from None
    return config


def make_strategy(kind: Strategy, log=print):
    """The tf.distribute strategy for ``kind`` and this process's place in it. Must run before
    any other TensorFlow op: MultiWorkerMirroredStrategy configures the runtime's collectives."""
    import tensorflow as tf
    tf_config = _tf_config()
    if kind is Strategy.MULTI_WORKER:
        if tf_config is None:
            raise DistributeError("--strategy multi-worker needs TF_CONFIG: the cluster's addresses and "
                                  "this process's task, as TensorFlow documents it (see the README)")
        task = tf_config["task"]
        if task["type"] not in ("chief", "worker"):
            raise DistributeError(f"TF_CONFIG task type must be chief or worker, got {task['type']!r}")
        jobs = tf_config["cluster"]
        workers = sum(len(jobs.get(j, [])) for j in ("chief", "worker"))
        log(f"waiting for the {workers} tasks of TF_CONFIG (this is {task['type']}:{task['index']})")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        is_chief = task["type"] == "chief" or ("chief" not in jobs and int(task["index"]) == 0)
        return strategy, Cluster("multi-worker", workers, f"{task['type']}:{task['index']}", is_chief,
                                 strategy.num_replicas_in_sync, tuple(strategy.extended.worker_devices))
    if tf_config is not None:
        log(f"note: TF_CONFIG is set but --strategy is {kind.value}: training on this machine alone "
            f"(pass --strategy multi-worker to join the cluster)")
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if kind is Strategy.MIRRORED or (kind is Strategy.AUTO and len(gpus) > 1):
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy, Cluster("mirrored", 1, "local", True, strategy.num_replicas_in_sync, tuple(devices))
    strategy = tf.distribute.get_strategy()
    return strategy, Cluster("default", 1, "local", True, 1, tuple(gpus[:1] or ["/cpu:0"]))


class Loop:
    """The compiled train and evaluation functions of one model under one strategy.

    ``augment_in_step``: flip and shift inside the compiled step (the batch arrives uint8
    with its per-image parameters) rather than in the tf.data map.
    """

    def __init__(self, strategy, model, preprocessing, global_batch: int, augment: bool,
                 augment_in_step: bool = True, label_smoothing: float = 0.0):
        import keras
        import tensorflow as tf
        self.strategy, self.model, self.p = strategy, model, preprocessing
        self.global_batch, self.classes = global_batch, model.output_shape[-1]
        self.augment = augment and augment_in_step
        self.loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)
        # partial(), not the method: TensorFlow counts traces per code object, and a process
        # that trains several models (the sweep, the tests) would be warned of "retracing".
        self._train = tf.function(partial(Loop._steps, self))
        self.evaluate = Evaluator(model, preprocessing, self.loss).evaluate

    def _replica_step(self, x, y, aug):
        import tensorflow as tf
        if self.augment:
            x = augment(x, aug)
        with tf.GradientTape() as tape:
            probs = self.model(normalize(x, self.p), training=True)
            per_image = self.loss(tf.one_hot(y, self.classes), probs)
            loss = tf.nn.compute_average_loss(per_image, global_batch_size=self.global_batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        variables = self.model.trainable_variables
        self.model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, 1), y), tf.float32))
        return tf.reduce_sum(per_image), correct

    def _steps(self, iterator, k):
        import tensorflow as tf
        total, correct = tf.constant(0.0), tf.constant(0.0)
        for _ in tf.range(k):
            loss, right = self.strategy.run(self._replica_step, args=next(iterator))
            total += self.strategy.reduce("SUM", loss, axis=None)
            correct += self.strategy.reduce("SUM", right, axis=None)
        return total, correct

    def train_epoch(self, iterator, steps: int, steps_per_execution: int, on_steps=None) -> tuple[float, float]:
        """``steps`` steps, k at a time; ``on_steps(n, mean_loss)`` after each call.
        Returns (mean loss, top-1) over the epoch's training images."""
        import tensorflow as tf
        total = correct = 0.0
        done = 0
        while done < steps:
            k = min(steps_per_execution, steps - done)
            loss, right = self._train(iterator, tf.constant(k))
            total, correct, done = total + float(loss), correct + float(right), done + k
            if on_steps:
                on_steps(k, total / (done * self.global_batch))
        images = steps * self.global_batch
        return total / images, correct / images


class Evaluator:
    """(mean loss, top-1) of a model on a split, on this process's device only: the chief
    evaluates alone, with no collective op for the workers to join."""

    def __init__(self, model, preprocessing, loss=None):
        import keras
        import tensorflow as tf
        self.model, self.p, self.classes = model, preprocessing, model.output_shape[-1]
        self.loss = loss or keras.losses.CategoricalCrossentropy(reduction=None)
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.uint8)
        self._batch = tf.function(partial(Evaluator._eval_batch, self),
                                  input_signature=[spec, tf.TensorSpec((None,), tf.int64)])

    def _eval_batch(self, x, y):
        import tensorflow as tf
        probs = self.model(normalize(x, self.p), training=False)
        loss = tf.reduce_sum(self.loss(tf.one_hot(y, self.classes), probs))
        return loss, tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, 1), y), tf.float32))

    def evaluate(self, split, batch_size: int = 256) -> tuple[float, float]:
        import numpy as np
        total = correct = 0.0
        for start in range(0, len(split), batch_size):
            idx = np.arange(start, min(start + batch_size, len(split)))
            loss, right = self._batch(split.batch(idx), split.y[idx])
            total, correct = total + float(loss), correct + float(right)
        return total / len(split), correct / len(split)


def broadcast_from_chief(strategy, cluster: Cluster, variables) -> None:
    """Give every worker the chief's values of ``variables`` (the model and the optimizer, after
    the chief alone loaded a checkpoint or a weights file): an all-reduce in which only the
    first replica, which is on the chief, contributes. Workers thus never read OUT."""
    if cluster.workers <= 1:
        return
    import tensorflow as tf
    values = [v.value if hasattr(v, "value") and not callable(v.value) else v for v in variables]
    groups = {}   # an all-reduce packs its tensors together: one per dtype
    for i, v in enumerate(values):
        groups.setdefault(v.dtype, []).append(i)

    def first_replica_only():
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        return [ctx.all_reduce("SUM", [tf.where(first, tf.identity(values[i]), tf.zeros_like(values[i]))
                                       for i in group]) for group in groups.values()]

    reduced = tf.function(lambda: strategy.run(first_replica_only))()
    for group, results in zip(groups.values(), reduced):
        for i, r in zip(group, results):
            variables[i].assign(strategy.experimental_local_results(r)[0])


def barrier(strategy, cluster: Cluster) -> None:
    """Every worker waits here until all have arrived (a one-number all-reduce): workers stay up
    while the chief writes the model, so none leaves the cluster early."""
    if cluster.workers <= 1:
        return
    import tensorflow as tf
    tf.function(lambda: strategy.run(
        lambda: tf.distribute.get_replica_context().all_reduce("SUM", tf.constant(1.0))))()
