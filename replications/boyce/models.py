"""The six models of Boyce's capstone, as a registry: setting name -> how to build it.

Custom models (48x48x3 inputs scaled to [0, 1], grayscale FER2013 repeated to three channels):

- `model1`: exactly as the paper's appendix draws it (REPLICATIONS.md pins it down).
- `model2`: "deeper", otherwise unspecified. Our choice, the deeper variant such capstone notebooks
  commonly build: four blocks Conv 2x2 (same) -> BatchNorm -> LeakyReLU(0.1) -> MaxPool 2, with
  256, 128, 64, 32 filters, then Dense 512 ReLU -> Dense 128 ReLU -> Dense 4 softmax.
- `final`: "5 convolutional blocks, each with layers that minimize data loss and overfitting". Our choice:
  five blocks Conv 3x3 (same padding: no border lost) -> BatchNorm -> LeakyReLU(0.1) -> MaxPool 2 ->
  Dropout 0.2 (against overfitting), with 32, 64, 128, 256, 512 filters (48 -> 24 -> 12 -> 6 -> 3 -> 1),
  then Dense 256 -> BatchNorm -> ReLU -> Dropout 0.4 -> Dense 4 softmax.
- `final_reduced`: the same with half the filters (16..256), the model an earlier, compute-bound run used.

Transfer models: a `keras.applications` backbone (include_top=False, global average pooling) and a small
head trained on its features. Each takes RGB pixels in 0..255 at its own input size and applies its
application's `preprocess_input` as ordinary Keras layers inside the model, so a saved model needs no
custom code to load (the demo loads bundles without importing this module).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

CLASS_COUNT = 4
CUSTOM_INPUT_SIZE = 48  # FER2013's own size; Model 1's input is 48x48x3 in the paper
KERAS_WEIGHTS_BASE = "https://storage.googleapis.com/"
# caffe-mode preprocess_input (VGG16): RGB -> BGR, then subtract the ImageNet channel means in BGR order.
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)


def build_model1(num_classes: int = CLASS_COUNT, input_size: int = CUSTOM_INPUT_SIZE) -> keras.Model:
    """Conv64 k2 -> pool -> Conv32 k2 -> pool -> Conv32 k2 -> pool -> Dense 512 -> Dropout 0.4 -> softmax."""
    return keras.Sequential(
        [
            keras.Input((input_size, input_size, 3)),
            layers.Conv2D(64, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.4),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),  # float32 under mixed precision
        ],
        name="boyce_model1",
    )


def _conv_block(filters: int, kernel_size: int, dropout: float = 0.0) -> list[keras.Layer]:
    block = [
        layers.Conv2D(filters, kernel_size, padding="same"),
        layers.BatchNormalization(),
        layers.LeakyReLU(negative_slope=0.1),
        layers.MaxPooling2D(2),
    ]
    return block + ([layers.Dropout(dropout)] if dropout else [])


def build_model2(num_classes: int = CLASS_COUNT, input_size: int = CUSTOM_INPUT_SIZE) -> keras.Model:
    """Model 1 made deeper: four Conv 2x2 -> BatchNorm -> LeakyReLU -> pool blocks (32, 32, 32, 32), then
    Dense 512 ReLU -> Dropout 0.4 -> Dense 128 ReLU -> softmax."""
    blocks = [layer for filters in (32, 32, 32, 32) for layer in _conv_block(filters, 2)]
    return keras.Sequential(
        [
            keras.Input((input_size, input_size, 3)),
            *blocks,
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.4),
            layers.Dense(128, activation="relu"),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="boyce_model2",
    )


FINAL_FILTERS = (32, 64, 128, 256, 512)
REDUCED_FINAL_FILTERS = (16, 32, 64, 128, 256)


def build_final_model(
    num_classes: int = CLASS_COUNT, input_size: int = CUSTOM_INPUT_SIZE, widths: tuple[int, ...] = FINAL_FILTERS
) -> keras.Model:
    """Five Conv 3x3 -> BatchNorm -> LeakyReLU -> pool -> Dropout 0.2 blocks (`widths` filters), Dense 256 ->
    softmax."""
    blocks = [layer for filters in widths for layer in _conv_block(filters, 3, dropout=0.2)]
    return keras.Sequential(
        [
            keras.Input((input_size, input_size, 3)),
            *blocks,
            layers.Flatten(),
            layers.Dense(256),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(0.4),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="boyce_final",
    )


@dataclass(frozen=True)
class Backbone:
    """A keras.applications backbone: how to build it and the ImageNet weights file Keras would cache."""

    application: str  # attribute of keras.applications, e.g. "VGG16"
    input_size: int  # square side the images are resized to
    weights_file: str  # the notop file's name in Keras' cache folder (~/.keras/models)
    weights_url: str  # where keras.applications downloads it from
    keras_md5: str  # the md5 Keras checks the download against (its `file_hash`)
    preprocess_mode: str  # what its preprocess_input does: "caffe", "tf" or "none" (done inside the model)

    def build(self) -> keras.Model:
        """The backbone with random weights: (size, size, 3) preprocessed pixels -> pooled feature vector."""
        application = getattr(keras.applications, self.application)
        return application(
            include_top=False,
            weights=None,
            input_shape=(self.input_size, self.input_size, 3),
            pooling="avg",
        )


BACKBONES: dict[str, Backbone] = {
    # VGG16 and EfficientNetB0 accept inputs from 32x32: FER2013's 48x48 is kept.
    "vgg16": Backbone(
        application="VGG16",
        input_size=48,
        weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_url=KERAS_WEIGHTS_BASE
        + "tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        keras_md5="6d6bbae143d832006294945121d1f1fc",
        preprocess_mode="caffe",
    ),
    # InceptionResNetV2 needs at least 75x75.
    "inception_resnet_v2": Backbone(
        application="InceptionResNetV2",
        input_size=75,
        weights_file="inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_url=KERAS_WEIGHTS_BASE + "tensorflow/keras-applications/inception_resnet_v2/"
        "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        keras_md5="d19885ff4a710c122648d3b5c3b684e4",
        preprocess_mode="tf",
    ),
    "efficientnet_b0": Backbone(
        application="EfficientNetB0",
        input_size=48,
        weights_file="efficientnetb0_notop.h5",
        weights_url=KERAS_WEIGHTS_BASE + "keras-applications/efficientnetb0_notop.h5",
        keras_md5="50bc09e76180e00e4465e1a485ddc09d",
        preprocess_mode="none",  # EfficientNet rescales and normalises inside; its preprocess_input is identity
    ),
}

CUSTOM_MODELS: dict[str, Callable[..., keras.Model]] = {
    "model1": build_model1,
    "model2": build_model2,
    "final": build_final_model,
    "final_reduced": functools.partial(build_final_model, widths=REDUCED_FINAL_FILTERS),
}
MODEL_NAMES: tuple[str, ...] = (*CUSTOM_MODELS, *BACKBONES)


def is_transfer(name: str) -> bool:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown Boyce model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    return name in BACKBONES


def input_size(name: str) -> int:
    return BACKBONES[name].input_size if is_transfer(name) else CUSTOM_INPUT_SIZE


def build_custom_model(name: str, num_classes: int = CLASS_COUNT) -> keras.Model:
    if is_transfer(name):
        raise ValueError(f"{name} is a transfer model; build it with build_feature_extractor and build_head")
    return CUSTOM_MODELS[name](num_classes)


def preprocessing_layers(backbone: Backbone) -> list[keras.Layer]:
    """Its application's preprocess_input as plain, serialisable Keras layers (0..255 RGB in)."""
    if backbone.preprocess_mode == "caffe":
        # A fixed 1x1 convolution: output channel j is input channel 2 - j (RGB -> BGR) minus its mean.
        kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
        for output_channel in range(3):
            kernel[0, 0, 2 - output_channel, output_channel] = 1.0
        bias = -np.asarray(CAFFE_BGR_MEANS, dtype=np.float32)
        convolution = layers.Conv2D(3, 1, name="caffe_preprocessing", trainable=False)
        convolution.build((None, backbone.input_size, backbone.input_size, 3))
        convolution.set_weights([kernel, bias])
        return [convolution]
    if backbone.preprocess_mode == "tf":
        return [layers.Rescaling(1.0 / 127.5, offset=-1.0, name="tf_preprocessing")]  # 0..255 -> -1..1
    if backbone.preprocess_mode == "none":
        return []
    raise ValueError(f"unknown preprocess mode {backbone.preprocess_mode!r}")


def build_feature_extractor(name: str) -> keras.Model:
    """0..255 RGB images at the backbone's size -> preprocess_input -> backbone -> pooled features.

    The backbone is a nested model named after its application, so ImageNet weights load into it alone.
    """
    backbone = BACKBONES[name]
    inputs = keras.Input((backbone.input_size, backbone.input_size, 3), name="pixels_0_255")
    features = inputs
    for layer in preprocessing_layers(backbone):
        features = layer(features)
    features = backbone.build()(features)
    return keras.Model(inputs, features, name=f"{name}_features")


def backbone_of(extractor: keras.Model) -> keras.Model:
    """The keras.applications model inside a feature extractor."""
    nested = [layer for layer in extractor.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(f"{extractor.name} should hold exactly one backbone model, found {len(nested)}")
    return nested[0]


def build_head(feature_mean: np.ndarray, feature_variance: np.ndarray, num_classes: int = CLASS_COUNT) -> keras.Model:
    """Pooled backbone features -> standardised -> Dense 256 ReLU -> Dropout 0.3 -> Dense 128 ReLU -> softmax.

    Each feature is standardised with the training set's mean and variance (a fixed Normalization layer),
    which puts the three backbones' features on one scale: a randomly initialised EfficientNetB0's
    features are about 1e-6, far below BatchNormalization's epsilon.
    """
    return keras.Sequential(
        [
            keras.Input((len(feature_mean),)),
            layers.Normalization(mean=feature_mean, variance=feature_variance, name="standardise_features"),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(128, activation="relu"),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="transfer_head",
    )


def assemble_transfer_model(name: str, extractor: keras.Model, head: keras.Model) -> keras.Model:
    """Images -> extractor -> head: the whole model, as `predict` and `demo` use it."""
    inputs = keras.Input(extractor.input_shape[1:], name="pixels_0_255")
    return keras.Model(inputs, head(extractor(inputs)), name=f"boyce_{name}")
