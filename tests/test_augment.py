"""Augmentation: Keras 2 ImageDataGenerator affine semantics, stateless seeds, tf.data use."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from fer_common.augment import (
    AffineParams,
    AugmentConfig,
    affine_transform,
    augment_dataset,
    make_augmenter,
)

SEED = tf.constant([1, 2], tf.int64)


def noise_images(count: int = 4, height: int = 48, width: int = 40, channels: int = 1) -> np.ndarray:
    return np.random.default_rng(0).random((count, height, width, channels), dtype=np.float32)


def smooth_image(size: int = 48) -> np.ndarray:
    """A soft blob: a sub-pixel move changes it only a little, unlike noise."""
    rows, cols = np.mgrid[:size, :size]
    blob = np.exp(-((rows - size / 2) ** 2 + (cols - size / 3) ** 2) / (2 * (size / 6) ** 2))
    return blob.astype(np.float32)[np.newaxis, :, :, np.newaxis]


def params(count: int = 1, **values: float) -> AffineParams:
    defaults = {"rotation": 0, "shift_rows": 0, "shift_cols": 0, "shear": 0, "zoom_rows": 1, "zoom_cols": 1, "flip": 0}
    defaults.update(values)
    return AffineParams(**{name: tf.fill([count], float(value)) for name, value in defaults.items()})


def keras2_apply_affine_transform(
    image: np.ndarray, theta: float, tx: float, ty: float, shear: float, zx: float, zy: float
) -> np.ndarray:
    """Keras 2's `apply_affine_transform` (channels last, fill_mode nearest, order 1), for reference."""
    ndimage = pytest.importorskip("scipy.ndimage")
    theta, shear = np.deg2rad(theta), np.deg2rad(shear)
    matrix = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    matrix = matrix @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    matrix = matrix @ np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    matrix = matrix @ np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    o_x, o_y = image.shape[0] / 2 + 0.5, image.shape[1] / 2 + 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    matrix = offset @ matrix @ np.linalg.inv(offset)
    channels = [
        ndimage.affine_transform(image[:, :, channel], matrix[:2, :2], matrix[:2, 2], order=1, mode="nearest")
        for channel in range(image.shape[2])
    ]
    return np.stack(channels, axis=-1)


def test_identity_config_leaves_images_unchanged():
    images = noise_images()
    augment = make_augmenter(AugmentConfig())
    np.testing.assert_array_equal(augment(images, SEED).numpy(), images)
    np.testing.assert_array_equal(affine_transform(images, params(len(images))).numpy(), images)


def test_horizontal_flip_only_flips():
    images = np.repeat(noise_images(1), 32, axis=0)
    output = make_augmenter(AugmentConfig(horizontal_flip=True))(images, SEED).numpy()
    flipped = [np.array_equal(out, images[0, :, ::-1]) for out in output]
    unchanged = [np.array_equal(out, images[0]) for out in output]
    assert all(a != b for a, b in zip(flipped, unchanged, strict=True))  # each image is one of the two
    assert 4 <= sum(flipped) <= 28


def test_pure_shift_moves_the_pattern_by_whole_pixels():
    image = noise_images(1)
    left = affine_transform(image, params(shift_cols=3)).numpy()[0]
    np.testing.assert_allclose(left[:, :-3], image[0, :, 3:], atol=1e-6)  # content moves 3 px left
    edge = np.repeat(image[0, :, -1:], 3, axis=1)
    np.testing.assert_allclose(left[:, -3:], edge, atol=1e-6)  # the vacated columns repeat the edge
    down = affine_transform(image, params(shift_rows=-2)).numpy()[0]
    np.testing.assert_allclose(down[2:], image[0, :-2], atol=1e-6)  # content moves 2 px down


def test_width_shift_range_stays_within_its_fraction():
    image = np.zeros((1, 40, 40, 1), np.float32)
    image[0, 18:22, 18:22] = 1.0
    output = make_augmenter(AugmentConfig(width_shift_range=0.1))(np.repeat(image, 16, axis=0), SEED).numpy()
    cols = np.arange(40)
    centres = [(out[:, :, 0].sum(axis=0) * cols).sum() / out.sum() for out in output]
    offsets = np.array(centres) - 19.5
    assert np.abs(offsets).max() <= 4.01 and np.abs(offsets).max() > 0.5  # up to 0.1 * 40 px, and moving
    rows = np.arange(40)
    row_centres = [(out[:, :, 0].sum(axis=1) * rows).sum() / out.sum() for out in output]
    np.testing.assert_allclose(row_centres, 19.5, atol=1e-4)  # width shift does not move rows


def test_shear_range_is_in_degrees():
    image = smooth_image()
    slight = make_augmenter(AugmentConfig(shear_range=0.2))(image, SEED).numpy()
    strong = make_augmenter(AugmentConfig(shear_range=30))(image, SEED).numpy()
    assert np.abs(slight - image).max() < 0.01
    assert np.abs(strong - image).max() > 0.1


@pytest.mark.parametrize("channels", [1, 3])
def test_matches_keras2_apply_affine_transform(channels):
    image = noise_images(1, 48, 40, channels)[0].astype(np.float64)
    random = np.random.default_rng(channels)
    for _ in range(4):
        theta, tx, ty = random.uniform(-30, 30), random.uniform(-5, 5), random.uniform(-5, 5)
        shear, zx, zy = random.uniform(-20, 20), random.uniform(0.8, 1.2), random.uniform(0.8, 1.2)
        expected = keras2_apply_affine_transform(image, theta, tx, ty, shear, zx, zy)
        chosen = params(rotation=theta, shift_rows=tx, shift_cols=ty, shear=shear, zoom_rows=zx, zoom_cols=zy)
        output = affine_transform(image[np.newaxis].astype(np.float32), chosen).numpy()[0]
        np.testing.assert_allclose(output, expected, atol=1e-4)


FULL = AugmentConfig(
    rotation_range=15,
    width_shift_range=0.1,
    height_shift_range=0.1,
    shear_range=10,
    zoom_range=0.15,
    horizontal_flip=True,
)


def test_same_seed_same_output_different_seed_different_output():
    images = noise_images()
    augment = make_augmenter(FULL)
    first = augment(images, SEED).numpy()
    np.testing.assert_array_equal(augment(images, SEED).numpy(), first)
    assert not np.allclose(augment(images, tf.constant([1, 3], tf.int64)).numpy(), first)
    assert not np.allclose(first[0], first[1])  # each image of a batch gets its own draw


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_dtype_and_shape_preserved(dtype):
    augment = make_augmenter(FULL)
    batch = (noise_images(3, 48, 48, 3) * 255).astype(dtype)
    assert augment(batch, SEED).dtype == tf.as_dtype(dtype) and augment(batch, SEED).shape == batch.shape
    single = augment(batch[0], SEED)
    assert single.dtype == tf.as_dtype(dtype) and single.shape == batch[0].shape


def epoch(dataset: tf.data.Dataset) -> np.ndarray:
    return np.stack([image.numpy() for image, _ in dataset])


def test_augment_dataset_is_deterministic_and_varies_by_epoch():
    images, labels = np.repeat(noise_images(1), 6, axis=0), np.arange(6)
    source = tf.data.Dataset.from_tensor_slices((images, labels))
    augmented = augment_dataset(source, FULL, seed=7)
    first_epoch, second_epoch = epoch(augmented), epoch(augmented)
    np.testing.assert_array_equal(epoch(augment_dataset(source, FULL, seed=7)), first_epoch)
    assert not np.allclose(second_epoch, first_epoch)
    assert not np.allclose(epoch(augment_dataset(source, FULL, seed=8)), first_epoch)
    assert [int(label) for _, label in augmented] == list(range(6))
    assert first_epoch.shape == images.shape and first_epoch.dtype == np.float32


def test_augment_dataset_of_batches():
    source = tf.data.Dataset.from_tensor_slices((noise_images(8), np.arange(8))).batch(4)
    output = epoch(augment_dataset(source, FULL, seed=1))
    assert output.shape == (2, 4, 48, 40, 1)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"width_shift_range": 1.5}, "fraction"),
        ({"rotation_range": -1}, ">= 0"),
        ({"zoom_range": 1.5}, "zoom_range"),
        ({"zoom_range": (1.2, 0.8)}, "zoom_range"),
        ({"fill_mode": "reflect"}, "nearest"),
    ],
)
def test_config_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**options)


def test_zoom_range_bounds():
    assert AugmentConfig(zoom_range=0.2).zoom_bounds == (0.8, 1.2)
    assert AugmentConfig(zoom_range=(0.9, 1.3)).zoom_bounds == (0.9, 1.3)
    assert AugmentConfig().is_identity and not AugmentConfig(shear_range=0.2).is_identity
