"""The recipe's training input: each epoch's batches, shuffled, warped and partly erased, all a function of
(seed, epoch) so a resumed run sees the batches an uninterrupted one would have.

Random erasing (Zhong et al. 2020, arXiv 1708.04896) is added here, after `fer_common.augment`'s affine
warp and flip: each image, with probability `probability`, gets one rectangle of `area` (a fraction of the
image) and aspect ratio (height / width, log-uniform) in `aspect` filled with uniform noise in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from fer_common.augment import AugmentConfig, augment_dataset
from fer_common.resume import epoch_order, epoch_seed


@dataclass(frozen=True)
class ErasingConfig:
    probability: float = 0.0
    area: tuple[float, float] = (0.02, 0.2)
    aspect: tuple[float, float] = (0.3, 3.3)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"erasing probability must lie in [0, 1], got {self.probability}")
        low, high = self.area
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"erasing area must give 0 < low <= high <= 1 (fractions of the image), got {self.area}")
        low, high = self.aspect
        if not 0.0 < low <= high:
            raise ValueError(f"erasing aspect must give 0 < low <= high, got {self.aspect}")


@dataclass(frozen=True)
class Augmentation:
    """The metadata's `augmentation` block: ImageDataGenerator-style warps plus random erasing."""

    affine: AugmentConfig
    erasing: ErasingConfig

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> Augmentation:
        erasing_keys = {"erasing_probability": "probability", "erasing_area": "area", "erasing_aspect": "aspect"}
        erasing = {erasing_keys[key]: _tuple(value) for key, value in block.items() if key in erasing_keys}
        affine = {key: _tuple(value) for key, value in block.items() if key not in erasing_keys}
        return cls(AugmentConfig(**affine), ErasingConfig(**erasing))


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # YAML gives lists; the configs take pairs


def random_erase(images: tf.Tensor, config: ErasingConfig, seed: tf.Tensor) -> tf.Tensor:
    """Erase one rectangle in some images of a batch (N, H, W, C); the same seed (shape [2]) gives the same
    output. The dtype and shape are kept."""
    images = tf.convert_to_tensor(images)
    if config.probability == 0.0:
        return images
    shape = tf.shape(images)
    count, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=6)

    def uniform(index: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([count], seeds[index], minval=low, maxval=high)

    area = uniform(0, *config.area) * height * width
    aspect = tf.exp(uniform(1, math.log(config.aspect[0]), math.log(config.aspect[1])))
    box_height = tf.minimum(tf.round(tf.sqrt(area * aspect)), height)
    box_width = tf.minimum(tf.round(tf.sqrt(area / aspect)), width)
    top = tf.floor(uniform(2, 0.0, 1.0) * (height - box_height + 1))
    left = tf.floor(uniform(3, 0.0, 1.0) * (width - box_width + 1))
    erase = uniform(4, 0.0, 1.0) < config.probability
    rows = tf.range(height)[tf.newaxis, :, tf.newaxis]
    cols = tf.range(width)[tf.newaxis, tf.newaxis, :]

    def per_image(values: tf.Tensor) -> tf.Tensor:
        return values[:, tf.newaxis, tf.newaxis]

    inside = (
        (rows >= per_image(top))
        & (rows < per_image(top + box_height))
        & (cols >= per_image(left))
        & (cols < per_image(left + box_width))
        & per_image(erase)
    )
    noise = tf.random.stateless_uniform(shape, seeds[5], dtype=images.dtype)
    return tf.where(inside[..., tf.newaxis], noise, images)


def erase_dataset(dataset: tf.data.Dataset, config: ErasingConfig, seed: int) -> tf.data.Dataset:
    """Random erasing on a dataset of (image batch, label batch), one stateless seed per batch."""
    seeds = tf.data.Dataset.random(seed=seed).batch(2)

    def erase(element: tuple[tf.Tensor, tf.Tensor], batch_seed: tf.Tensor):
        images, labels = element
        return random_erase(images, config, batch_seed), labels

    return tf.data.Dataset.zip((dataset, seeds)).map(erase, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def epoch_batches(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    augmentation: Augmentation,
    *,
    seed: int,
    epoch: int,
) -> tf.data.Dataset:
    """One epoch of (image, one-hot) batches in `epoch_order`, augmented batch by batch (one warp op per
    batch rather than per image: on two cores the per-image pipeline would starve the training step)."""
    order = epoch_order(len(images), seed, epoch)
    one_hot = np.eye(num_classes, dtype=np.float32)[labels[order]]
    dataset = tf.data.Dataset.from_tensor_slices((images[order], one_hot)).batch(batch_size)
    base = epoch_seed(seed, epoch)
    if not augmentation.affine.is_identity:
        dataset = augment_dataset(dataset, augmentation.affine, epoch_seed(base, 0))
    if augmentation.erasing.probability > 0:
        dataset = erase_dataset(dataset, augmentation.erasing, epoch_seed(base, 1))
    return dataset.prefetch(tf.data.AUTOTUNE)


def flip_horizontally(images: np.ndarray) -> np.ndarray:
    """The mirrored faces (N, H, W, C), for flip test-time augmentation."""
    return np.ascontiguousarray(images[:, :, ::-1, :])
