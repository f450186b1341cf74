"""Random affine augmentation with Keras 2 `ImageDataGenerator` semantics, as TensorFlow ops.

Keras 3 dropped `ImageDataGenerator`, whose options the papers quote. This reproduces its random
affine part: `apply_affine_transform` composes rotation, shift, shear and zoom (in that order, in
(row, column) coordinates, about the point (height/2 + 0.5, width/2 + 0.5) as Keras 2 does), samples
bilinearly with edge-replicating fill, then flips horizontally. The same distributions are drawn, but
with stateless TensorFlow random ops, so a seed fixes the result and it all runs inside `tf.data`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import tensorflow as tf

FillMode = Literal["nearest"]
Augmenter = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class AugmentConfig:
    """`ImageDataGenerator` options, with its meanings.

    rotation_range: degrees, angle uniform in [-r, r]. width_shift_range / height_shift_range:
    fractions of the width / height, shift uniform in [-r, r] times that size. shear_range: an ANGLE
    IN DEGREES, uniform in [-r, r] (so 0.2 is almost nothing). zoom_range: z means [1 - z, 1 + z], or
    a (low, high) pair; the row and column zoom factors are drawn independently, and a factor above 1
    shows a larger area (zooms out). horizontal_flip: mirror half the images. fill_mode: "nearest"
    (repeat edge pixels), the only mode the papers use; Keras 2's "constant" depended on the SciPy
    version's edge handling, so it is not offered.
    """

    rotation_range: float = 0.0
    width_shift_range: float = 0.0
    height_shift_range: float = 0.0
    shear_range: float = 0.0
    zoom_range: float | tuple[float, float] = 0.0
    horizontal_flip: bool = False
    fill_mode: FillMode = "nearest"

    def __post_init__(self) -> None:
        for name in ("rotation_range", "width_shift_range", "height_shift_range", "shear_range"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("width_shift_range", "height_shift_range"):
            if (value := getattr(self, name)) >= 1:
                raise ValueError(f"{name} is a fraction of the image size, so below 1; got {value}")
        low, high = self.zoom_bounds
        if not 0 < low <= high:
            raise ValueError(f"zoom_range must give 0 < low <= high, got {self.zoom_range}")
        if self.fill_mode != "nearest":
            raise ValueError(f"fill_mode must be 'nearest', got {self.fill_mode!r}")

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        if isinstance(self.zoom_range, int | float):
            return 1 - self.zoom_range, 1 + self.zoom_range
        low, high = self.zoom_range
        return float(low), float(high)

    @property
    def is_identity(self) -> bool:
        geometric = (self.rotation_range, self.width_shift_range, self.height_shift_range, self.shear_range)
        return not any(geometric) and self.zoom_bounds == (1.0, 1.0) and not self.horizontal_flip


@dataclass
class AffineParams:
    """Per-image transform parameters, each a float32 tensor of shape (batch,).

    Keras 2 names: rotation=theta, shift_rows=tx, shift_cols=ty, zoom_rows=zx, zoom_cols=zy. Shifts
    are in pixels; a positive shift moves the content up / left. flip is 1.0 to mirror, else 0.0.
    """

    rotation: tf.Tensor
    shift_rows: tf.Tensor
    shift_cols: tf.Tensor
    shear: tf.Tensor
    zoom_rows: tf.Tensor
    zoom_cols: tf.Tensor
    flip: tf.Tensor


def random_params(
    config: AugmentConfig, batch_size: tf.Tensor | int, height: tf.Tensor | int, width: tf.Tensor | int, seed: tf.Tensor
) -> AffineParams:
    """Parameters drawn as `ImageDataGenerator.get_random_transform` draws them, from a stateless seed."""
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=7)

    def uniform(index: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([batch_size], seeds[index], minval=low, maxval=high)

    def symmetric(index: int, limit: float) -> tf.Tensor:
        return uniform(index, -limit, limit)

    zoom_low, zoom_high = config.zoom_bounds
    coin = uniform(6, 0.0, 1.0)
    flip = tf.cast(coin < 0.5, tf.float32) if config.horizontal_flip else tf.zeros_like(coin)
    return AffineParams(
        rotation=symmetric(0, config.rotation_range),
        shift_rows=symmetric(1, config.height_shift_range) * tf.cast(height, tf.float32),
        shift_cols=symmetric(2, config.width_shift_range) * tf.cast(width, tf.float32),
        shear=symmetric(3, config.shear_range),
        zoom_rows=uniform(4, zoom_low, zoom_high),
        zoom_cols=uniform(5, zoom_low, zoom_high),
        flip=flip,
    )


def _matrices(rows: list[list[tf.Tensor | float]], like: tf.Tensor) -> tf.Tensor:
    """(batch, 3, 3) matrices from a 3x3 layout of per-image tensors or constants."""
    entries = [[tf.broadcast_to(tf.cast(entry, tf.float32), tf.shape(like)) for entry in row] for row in rows]
    return tf.stack([tf.stack(row, axis=-1) for row in entries], axis=-2)


def affine_matrices(params: AffineParams, height: tf.Tensor | int, width: tf.Tensor | int) -> tf.Tensor:
    """(batch, 3, 3) maps from output to input (row, column) coordinates, as Keras 2 composes them."""
    like = params.rotation
    theta = params.rotation * (math.pi / 180)
    shear = params.shear * (math.pi / 180)
    center_rows = tf.cast(height, tf.float32) / 2 + 0.5  # Keras 2's centre, half a pixel past the true one
    center_cols = tf.cast(width, tf.float32) / 2 + 0.5
    last_col = tf.cast(width, tf.float32) - 1
    to_center = _matrices([[1, 0, center_rows], [0, 1, center_cols], [0, 0, 1]], like)
    cos, sin = tf.cos(theta), tf.sin(theta)
    rotate = _matrices([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], like)
    shift = _matrices([[1, 0, params.shift_rows], [0, 1, params.shift_cols], [0, 0, 1]], like)
    shear_matrix = _matrices([[1, -tf.sin(shear), 0], [0, tf.cos(shear), 0], [0, 0, 1]], like)
    zoom = _matrices([[params.zoom_rows, 0, 0], [0, params.zoom_cols, 0], [0, 0, 1]], like)
    from_center = _matrices([[1, 0, -center_rows], [0, 1, -center_cols], [0, 0, 1]], like)
    # Keras flips after the affine warp; reading the warp's output at the mirrored column is the same.
    mirrored = 1 - 2 * params.flip
    flip = _matrices([[1, 0, 0], [0, mirrored, params.flip * last_col], [0, 0, 1]], like)
    return to_center @ rotate @ shift @ shear_matrix @ zoom @ from_center @ flip


def affine_transform(images: tf.Tensor, params: AffineParams) -> tf.Tensor:
    """Warp a batch (batch, height, width, channels) by `params`, bilinear with edge-replicating fill.

    The dtype and shape are kept. Matches Keras 2 (SciPy `affine_transform`, order 1, mode "nearest").
    """
    images = tf.convert_to_tensor(images)
    size = tf.shape(images)[1:3]
    matrix = affine_matrices(params, size[0], size[1])
    # ImageProjectiveTransform works in (x=column, y=row): x_in = a0 x + a1 y + a2, y_in = b0 x + b1 y + b2.
    transforms = tf.stack(
        [
            matrix[:, 1, 1],
            matrix[:, 1, 0],
            matrix[:, 1, 2],
            matrix[:, 0, 1],
            matrix[:, 0, 0],
            matrix[:, 0, 2],
            tf.zeros_like(params.rotation),
            tf.zeros_like(params.rotation),
        ],
        axis=1,
    )
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=size,
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    return tf.ensure_shape(warped, images.shape)


def make_augmenter(config: AugmentConfig) -> Augmenter:
    """fn(images, seed) -> images for one image (H, W, C) or a batch (N, H, W, C).

    `seed` is a shape-[2] integer tensor; the same seed gives the same output (stateless random ops).
    Each image of a batch gets its own draw.
    """

    def augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        images = tf.convert_to_tensor(images)
        if config.is_identity:
            return images
        single = images.shape.rank == 3
        batch = images[tf.newaxis] if single else images
        shape = tf.shape(batch)
        params = random_params(config, shape[0], shape[1], shape[2], seed)
        warped = affine_transform(batch, params)
        return warped[0] if single else warped

    return augment


def augment_dataset(dataset: tf.data.Dataset, config: AugmentConfig, seed: int) -> tf.data.Dataset:
    """Augment the images of a dataset of (image, label) or (image batch, label batch) pairs.

    Each element gets its own stateless seed from a seeded random stream, so a run is reproducible;
    the stream moves on with each pass over the dataset, so every epoch sees new augmentations.
    """
    augment = make_augmenter(config)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def augment_element(element: tuple[tf.Tensor, tf.Tensor], element_seed: tf.Tensor):
        image, label = element
        return augment(image, element_seed), label

    return tf.data.Dataset.zip((dataset, seeds)).map(
        augment_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
