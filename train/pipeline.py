"""The training input: uint8 batches read with ``Split.batch`` in a seeded order, augmented per batch.

    plan = EpochPlan(len(split), seed=0, translate=2, augment=True)
    ds = strategy.distribute_datasets_from_function(replica_batches(split, plan, 128, 0, 21, steps))

Every epoch's image order and every image's flip and shift are a function of
(seed, epoch) alone, drawn in numpy from a generator keyed by them: no random
state carries over from one epoch to the next, so a run resumed after epoch 7
sees exactly the batches an uninterrupted run sees, and the images a replica
trains on at a step do not depend on how many replicas there are (step s of
epoch e is positions ``s*G .. (s+1)*G`` of that epoch's permutation, cut into
per-replica slices).

Batches stay uint8 until the training step, 4x less to move than float32;
``augment`` (flip, then shift with zero fill: the same as padding by
``translate`` pixels and cropping back) and ``normalize`` run on whole batches
in TensorFlow, either in the tf.data map or inside the compiled step.
"""
from __future__ import annotations

import hashlib

import numpy as np

from imagedata.dataset import Split
from imagedata.preprocess import Preprocessing

AUG_COLUMNS = 3   # per image: flip (0/1), dy, dx (pixels)


def _key(seed: int, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{salt}".encode()).digest()[:8], "little")


class EpochPlan:
    """The order and augmentation of every epoch: ``plan(epoch) -> (perm (N,), aug (N, 3) int32)``;
    ``aug[i]`` belongs to the image at position i of the epoch, ``perm[i]``."""

    def __init__(self, n: int, seed: int, translate: int, augment: bool):
        self.n, self.seed, self.translate, self.augment = n, seed, translate, augment
        self._last = (None, None)   # (epoch, plan): the loader threads of one epoch share it

    def __call__(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        cached, plan = self._last
        if cached == epoch:
            return plan
        rng = np.random.default_rng(_key(self.seed, f"epoch:{epoch}"))
        perm = rng.permutation(self.n)
        aug = np.zeros((self.n, AUG_COLUMNS), np.int32)
        if self.augment:
            aug[:, 0] = rng.integers(0, 2, self.n)
            aug[:, 1:] = rng.integers(-self.translate, self.translate + 1, (self.n, 2))
        self._last = (epoch, (perm, aug))
        return perm, aug

    def batch(self, split: Split, epoch: int, start: int, size: int):
        """Positions start..start+size of ``epoch``: (x (size, H, W, C) uint8, y (size,) int64,
        aug (size, 3) int32), in ascending image index (Split.batch's order)."""
        perm, aug = self(epoch)
        pos = np.arange(start, start + size)
        order = np.argsort(perm[pos], kind="stable")
        idx = perm[pos][order]
        return split.batch(idx), split.y[idx], aug[pos][order]


def replica_batches(split: Split, plan: EpochPlan, global_batch: int, first_epoch: int,
                    epochs: int, steps: int, augment_in_data: bool = False):
    """A ``dataset_fn`` for ``strategy.distribute_datasets_from_function``: each input pipeline
    (one per worker) yields, for every step of epochs ``first_epoch..epochs-1``, one
    per-replica batch for each of its local replicas, in replica order. Elements are
    (x uint8, y int64, aug int32); with ``augment_in_data`` the map has already applied
    ``aug`` to x. Batches are read on background threads and prefetched."""
    import tensorflow as tf

    h, w, c = split.x.shape[1:]

    def dataset_fn(ctx):
        b = ctx.get_per_replica_batch_size(global_batch)
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        first_slot = ctx.input_pipeline_id * local

        def load(i):
            i = int(i)
            epoch_step, r = divmod(i, local)
            e, s = divmod(epoch_step, steps)
            return plan.batch(split, first_epoch + e, s * global_batch + (first_slot + r) * b, b)

        def read(i):
            x, y, aug = tf.numpy_function(load, [i], (tf.uint8, tf.int64, tf.int32), stateful=False)
            x.set_shape((b, h, w, c))
            y.set_shape((b,))
            aug.set_shape((b, AUG_COLUMNS))
            if augment_in_data:
                x = augment(x, aug)
            return x, y, aug

        total = (epochs - first_epoch) * steps * local
        return (tf.data.Dataset.range(total)
                .map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))

    return dataset_fn


def augment(x, aug):
    """(B, H, W, C) uint8 -> the same, flipped left-right where aug[:, 0] and shifted by
    (aug[:, 1], aug[:, 2]) pixels with 0 filling what comes in from outside: the crop of a
    zero-padded image. Two gathers and a mask, no float conversion."""
    import tensorflow as tf
    h, w = x.shape[1], x.shape[2]
    flip, dy, dx = aug[:, 0:1], aug[:, 1:2], aug[:, 2:3]
    rows = tf.range(h)[None, :] - dy                      # (B, H) source row of each output row
    cols = tf.range(w)[None, :] - dx                      # (B, W) column in the flipped image
    inside = ((rows >= 0) & (rows < h))[:, :, None, None] & ((cols >= 0) & (cols < w))[:, None, :, None]
    cols = tf.where(flip > 0, w - 1 - cols, cols)
    out = tf.gather(x, tf.clip_by_value(rows, 0, h - 1), axis=1, batch_dims=1)
    out = tf.gather(out, tf.clip_by_value(cols, 0, w - 1), axis=2, batch_dims=1)
    return out * tf.cast(inside, x.dtype)


def normalize(x, p: Preprocessing):
    """uint8 -> float32 (x - mean) / std, as ``Preprocessing.normalize`` does in numpy."""
    import tensorflow as tf
    return (tf.cast(x, tf.float32) - p.mean) / p.std
