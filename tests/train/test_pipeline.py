"""The input pipeline: seeded epoch order, augmentation equal to pad-and-crop, replica slices of one batch."""
import numpy as np
import pytest

from imagedata.dataset import Split
from train.pipeline import EpochPlan, augment, replica_batches


def _pad_and_crop(im, flip, dy, dx, t):
    """The reference: flip, pad t pixels of 0 on every side, crop back shifted by (dy, dx)."""
    im = im[:, ::-1] if flip else im
    padded = np.pad(im, ((t, t), (t, t), (0, 0)))
    h, w = im.shape[:2]
    return padded[t - dy:t - dy + h, t - dx:t - dx + w]


def test_augment_is_flip_then_pad_and_crop_with_zero_fill():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (64, 9, 7, 3)).astype(np.uint8)   # no zero pixels: fill is visible
    aug = np.stack([rng.integers(0, 2, 64), rng.integers(-3, 4, 64), rng.integers(-3, 4, 64)], 1)
    got = augment(x, aug.astype(np.int32)).numpy()
    want = np.stack([_pad_and_crop(im, *a, t=3) for im, a in zip(x, aug)])
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.uint8 and (got == 0).any()


def test_epoch_plan_depends_on_seed_and_epoch_only():
    plan = EpochPlan(1000, seed=3, translate=2, augment=True)
    perm, aug = plan(4)
    again = EpochPlan(1000, seed=3, translate=2, augment=True)(4)
    np.testing.assert_array_equal(perm, again[0])
    np.testing.assert_array_equal(aug, again[1])
    assert sorted(perm) == list(range(1000))
    assert not np.array_equal(perm, plan(5)[0])
    assert not np.array_equal(perm, EpochPlan(1000, seed=4, translate=2, augment=True)(4)[0])
    assert aug[:, 0].min() == 0 and aug[:, 0].max() == 1 and aug[:, 1:].min() == -2 and aug[:, 1:].max() == 2
    assert not EpochPlan(1000, 3, 2, augment=False)(4)[1].any()


@pytest.mark.parametrize("replicas, pipelines", [(2, 1), (2, 2), (4, 2)])
def test_replicas_share_out_the_one_device_batch(replicas, pipelines):
    """Whatever the layout, step s trains on the images (and flips and shifts) of a one-device step s."""
    import tensorflow as tf
    n, global_batch, steps = 96, 16, 6
    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    split = Split(x, np.arange(n) % 4)
    plan = EpochPlan(n, seed=0, translate=1, augment=True)

    def elements(num_pipelines, pipeline, num_replicas):
        ctx = tf.distribute.InputContext(num_pipelines, pipeline, num_replicas)
        fn = replica_batches(split, plan, global_batch, first_epoch=1, epochs=3, steps=steps)
        return [tuple(t.numpy() for t in e) for e in fn(ctx)]

    one = elements(1, 0, 1)
    assert len(one) == 2 * steps
    many = [elements(pipelines, i, replicas) for i in range(pipelines)]
    local = replicas // pipelines
    for step, (x1, y1, a1) in enumerate(one):
        parts = [many[i][step * local + r] for i in range(pipelines) for r in range(local)]
        assert all(len(p[0]) == global_batch // replicas for p in parts)
        got = sorted(zip(*(np.concatenate([p[k] for p in parts]).tolist() for k in range(3))))
        want = sorted(zip(x1.tolist(), y1.tolist(), a1.tolist()))
        assert got == want
    epoch = [int(im[0, 0, 0]) for x1, _, _ in one[:steps] for im in x1]
    assert sorted(epoch) == list(range(n)), "an epoch sees every image once"
