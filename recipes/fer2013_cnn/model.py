"""The recipe's compact CNNs for 48x48 grayscale faces: a VGG-style stack or a small ResNet, both with
BatchNorm and global average pooling (so the head adds few weights and the file stays small)."""

from __future__ import annotations

from collections.abc import Sequence

ARCHITECTURES = ("vgg", "resnet")
INPUT_SHAPE = (48, 48, 1)


def build_model(
    architecture: str = "vgg",
    widths: Sequence[int] = (32, 64, 128, 256),
    dropout: float = 0.3,
    num_classes: int = 7,
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
):
    """The uncompiled model: one block per width, each halving the resolution (48 -> 3 with four blocks).

    vgg: two 3x3 conv-BN-ReLU, then 2x2 max pooling. resnet: a 3x3 stem at the first width, then one basic
    residual block per width (the first at stride 1, the others at stride 2 with a 1x1 projection).
    The softmax stays float32 under mixed precision."""
    import keras

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, not {architecture!r}")
    if not widths:
        raise ValueError("widths must name at least one block width")
    inputs = keras.Input(shape=input_shape)
    if architecture == "vgg":
        features = _vgg_blocks(inputs, widths)
    else:
        features = _resnet_blocks(inputs, widths)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    pooled = keras.layers.Dropout(dropout)(pooled)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(pooled)
    return keras.Model(inputs, outputs, name=f"fer2013_cnn_{architecture}")


def _conv_bn_relu(tensor, filters: int, strides: int = 1):
    import keras

    # No bias: the BatchNorm that follows has its own shift.
    tensor = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(tensor)
    tensor = keras.layers.BatchNormalization()(tensor)
    return keras.layers.ReLU()(tensor)


def _vgg_blocks(tensor, widths: Sequence[int]):
    import keras

    for width in widths:
        tensor = _conv_bn_relu(tensor, width)
        tensor = _conv_bn_relu(tensor, width)
        tensor = keras.layers.MaxPooling2D(2)(tensor)
    return tensor


def _resnet_blocks(tensor, widths: Sequence[int]):
    import keras

    tensor = _conv_bn_relu(tensor, widths[0])
    for index, width in enumerate(widths):
        strides = 1 if index == 0 else 2
        shortcut = tensor
        if strides != 1 or shortcut.shape[-1] != width:
            shortcut = keras.layers.Conv2D(width, 1, strides=strides, use_bias=False)(shortcut)
            shortcut = keras.layers.BatchNormalization()(shortcut)
        branch = _conv_bn_relu(tensor, width, strides)
        branch = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(branch)
        branch = keras.layers.BatchNormalization()(branch)
        tensor = keras.layers.ReLU()(keras.layers.Add()([shortcut, branch]))
    return tensor
