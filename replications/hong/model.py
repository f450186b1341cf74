"""Hong et al.'s network: the PyTorch CIFAR-10 tutorial's CNN with two more convolutions (4 conv + 3 FC)."""

from __future__ import annotations

import math


def final_feature_side(input_side: int, conv_layers: int, kernel_size: int) -> int:
    """Side of the feature map after `conv_layers` x (valid conv, 2x2 max-pool); < 1 means too small."""
    side = input_side
    for _ in range(conv_layers):
        side = (side - kernel_size + 1) // 2
        if side < 1:
            return 0
    return side


def pytorch_default_initializers(fan_in: int) -> dict:
    """PyTorch's default Conv2d/Linear initialisation, U(±1/√fan_in) for weights and biases.

    kaiming_uniform(a=√5) has bound √(6/((1+5)·fan_in)) = 1/√fan_in, which is Keras' VarianceScaling with
    scale 1/3, fan_in, uniform. The paper trains a PyTorch model; its slow start (near chance for ~35
    epochs) depends on this small initialisation, which Keras' Glorot default would not give.
    """
    import keras

    bound = 1.0 / math.sqrt(fan_in)
    return {
        "kernel_initializer": keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


def build_model(
    num_classes: int = 3,
    input_shape: tuple[int, int, int] = (96, 96, 1),
    conv_filters: tuple[int, ...] = (6, 16, 32, 64),
    kernel_size: int = 5,
    dense_units: tuple[int, ...] = (120, 84),
):
    """Normalise(0.5, 0.5) → 4 x [Conv k×k, ReLU, MaxPool 2] → Flatten → FC 120 → FC 84 → FC classes.

    The PyTorch CIFAR-10 tutorial's network with two more convolutions (the paper has 4 conv + 3 FC).
    """
    import keras
    from keras import layers

    side = final_feature_side(input_shape[0], len(conv_filters), kernel_size)
    if side < 1:
        raise ValueError(
            f"input {input_shape[0]}x{input_shape[1]} is too small for {len(conv_filters)} valid "
            f"{kernel_size}x{kernel_size} convolutions with 2x2 pooling"
        )
    # transforms.Normalize((0.5,), (0.5,)) of the tutorial: [0, 1] → [-1, 1].
    stack: list = [keras.Input(shape=input_shape), layers.Rescaling(2.0, offset=-1.0)]
    channels = input_shape[-1]
    for filters in conv_filters:
        fan_in = kernel_size * kernel_size * channels
        stack += [
            layers.Conv2D(filters, kernel_size, activation="relu", **pytorch_default_initializers(fan_in)),
            layers.MaxPooling2D(2),
        ]
        channels = filters
    stack.append(layers.Flatten())
    fan_in = side * side * channels
    for units in dense_units:
        stack.append(layers.Dense(units, activation="relu", **pytorch_default_initializers(fan_in)))
        fan_in = units
    # Softmax + categorical cross-entropy is PyTorch's CrossEntropyLoss on logits.
    output_init = pytorch_default_initializers(fan_in)
    stack.append(layers.Dense(num_classes, activation="softmax", dtype="float32", **output_init))
    return keras.Sequential(stack, name="hong_cnn")
