"""Models and loss of Dikshit et al. (CMU): a shallow baseline CNN, ResNet18, class-weighted cross-entropy.

Baseline (paper section 2.1): five 3x3 convolutions with zero padding, each followed by ReLU and 2x2
max-pooling (so every layer halves the feature map), then one linear layer to the classes. The paper gives
only "20 to 50 nodes" per layer; we use 20, 30, 40, 50, 50 channels, widening as the maps shrink. The paper
does not say how pixels are scaled; the models here take 0..255 RGB and rescale inside (baseline: to 0..1).
Both models end in softmax, because the loss below works on probabilities.

The authors' repository (github.com/sjhpark/Facial_Emotion_Classifier) differs from the paper's text: 12, 12,
24, 24, 24 channels, pooling after only the first four convolutions, raw 0..255 inputs at 224x224, Adam with
learning rate 5e-4 and an unweighted `nn.CrossEntropyLoss()`. This module follows the paper's text.

ResNet18 is torchvision's layout exactly, with Keras layer names mirroring torchvision's state_dict keys
(`layer1.0.conv1` -> `layer1_0_conv1`) so ImageNet weights converted from torchvision load by name; see
`load_torchvision_resnet18`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from fer_common.weights import load_weights_file

BASELINE_CHANNELS = (20, 30, 40, 50, 50)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET18_NPZ_FILENAME = "resnet18_imagenet_torchvision.npz"
RESNET18_WEIGHTS_NAME = "ImageNet ResNet18 weights (torchvision state_dict saved as .npz)"
TORCHVISION_RESNET18_HOW_TO = (
    "Make that file on a machine with torch and torchvision installed:\n"
    "    import numpy as np, torchvision\n"
    "    model = torchvision.models.resnet18(weights='IMAGENET1K_V1')\n"
    "    arrays = {key: value.numpy() for key, value in model.state_dict().items()}\n"
    f"    np.savez('{RESNET18_NPZ_FILENAME}', **arrays)"
)
_IMAGENET_CLASSES = 1000
# torchvision's BatchNorm2d defaults; Keras momentum is the weight of the old running value (1 - 0.1).
_BN_EPSILON = 1e-5
_BN_MOMENTUM = 0.9


def _torchvision_conv_init() -> keras.initializers.Initializer:
    """torchvision's kaiming_normal_(mode="fan_out", nonlinearity="relu"), one per layer: an unseeded Keras
    initializer fixes its seed when it is made, so one shared instance would give every conv of a shape the
    same kernel, and one made at import would ignore `keras.utils.set_random_seed`."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def build_baseline(
    input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = BASELINE_CHANNELS
) -> keras.Model:
    """The paper's shallow CNN: per width in `channels`, conv 3x3 (same) + ReLU + 2x2 max-pool; then linear.

    Input: 0..255 images of `input_shape` (H, W, C); H and W should be divisible by 2 ** len(channels).
    Output: softmax probabilities over `num_classes`.
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    features = layers.Rescaling(1.0 / 255.0, name="to_unit_range")(inputs)
    for index, width in enumerate(channels, start=1):
        features = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{index}")(features)
        features = layers.MaxPooling2D(2, name=f"pool{index}")(features)
    features = layers.Flatten(name="flatten")(features)
    outputs = layers.Dense(num_classes, activation="softmax", name="fc")(features)
    return keras.Model(inputs, outputs, name="cmu_baseline")


def build_resnet18(input_shape: Sequence[int], num_classes: int, include_top: bool = True) -> keras.Model:
    """torchvision's ResNet18 (BasicBlock x [2, 2, 2, 2], widths 64..512) in Keras.

    Input: 0..255 RGB images of `input_shape` (H, W, 3); the first layer applies torchvision's ImageNet
    normalisation (mean 0.485/0.456/0.406, std 0.229/0.224/0.225 on 0..1 pixels), so ImageNet weights see
    the inputs they were trained on. Padding is explicit (ZeroPadding2D + "valid") because Keras "same" pads
    strided convolutions asymmetrically where PyTorch pads symmetrically.
    include_top: end in `fc` (Dense, softmax over `num_classes`); without it the model outputs the
    512 pooled features and `num_classes` is unused.
    """
    if input_shape[-1] != 3:
        raise ValueError(f"ResNet18 takes RGB images (H, W, 3), got input shape {tuple(input_shape)}.")
    inputs = keras.Input(tuple(input_shape), name="image")
    normalised = layers.Rescaling(
        scale=[1.0 / (255.0 * std) for std in IMAGENET_STD],
        offset=[-mean / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)],
        name="imagenet_normalize",
    )(inputs)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(normalised)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, kernel_initializer=_torchvision_conv_init(), name="conv1")(x)
    x = _batch_norm("bn1")(x)
    x = layers.ReLU(name="relu")(x)
    # Zero padding equals PyTorch's -inf max-pool padding here: the inputs are >= 0 after ReLU.
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            x = _basic_block(x, width, stride, name=f"layer{stage}_{block}")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    if include_top:
        x = layers.Dense(num_classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, x, name="resnet18")


def _basic_block(inputs: keras.KerasTensor, width: int, stride: int, *, name: str) -> keras.KerasTensor:
    """torchvision BasicBlock: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the (downsampled) input, then ReLU."""
    x = layers.ZeroPadding2D(1, name=f"{name}_pad1")(inputs)
    x = _conv(width, 3, stride, name=f"{name}_conv1")(x)
    x = _batch_norm(f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.ZeroPadding2D(1, name=f"{name}_pad2")(x)
    x = _conv(width, 3, 1, name=f"{name}_conv2")(x)
    x = _batch_norm(f"{name}_bn2")(x)
    shortcut = inputs
    if stride != 1 or inputs.shape[-1] != width:
        shortcut = _conv(width, 1, stride, name=f"{name}_downsample_0")(inputs)
        shortcut = _batch_norm(f"{name}_downsample_1")(shortcut)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(x)


def _conv(width: int, kernel_size: int, stride: int, *, name: str) -> layers.Conv2D:
    return layers.Conv2D(
        width,
        kernel_size,
        strides=stride,
        use_bias=False,
        kernel_initializer=_torchvision_conv_init(),
        name=name,
    )


def _batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=name)


def load_torchvision_resnet18(model: keras.Model, npz_path: str | Path) -> None:
    """Load torchvision ImageNet ResNet18 weights from a .npz of its state_dict into `model`.

    `model` comes from `build_resnet18`. The .npz holds torchvision's state_dict arrays under their own keys
    (`conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`, ..., `fc.weight`); conv kernels are
    transposed OIHW -> HWIO and `fc.weight` (out, in) -> (in, out). `num_batches_tracked` is ignored. The
    `fc` arrays load only into a 1000-class head; any other head (fine-tuning) keeps its fresh weights.
    Make the file once, on a machine with torch and torchvision:

        import numpy as np, torchvision
        model = torchvision.models.resnet18(weights="IMAGENET1K_V1")
        arrays = {key: value.numpy() for key, value in model.state_dict().items()}
        np.savez("resnet18_imagenet_torchvision.npz", **arrays)

    Raises WeightsError when the file is missing or an array does not fit (naming the layer and shapes).
    """
    has_imagenet_head = "fc" in {layer.name for layer in model.layers} and (
        model.get_layer("fc").units == _IMAGENET_CLASSES
    )
    load_weights_file(
        model,
        npz_path,
        expected_name=RESNET18_WEIGHTS_NAME,
        how_to_get=TORCHVISION_RESNET18_HOW_TO,
        skip_torch_modules=() if has_imagenet_head else ("fc",),
    )


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights w_c = N / (K * n_c), for the loss of eq. 1.

    N: number of labels, n_c: labels of class c, K: number of classes present. With these weights the
    mean weight per sample is 1, so the weighted loss stays on the scale of plain cross-entropy. A class
    absent from `labels` gets weight 0 (it cannot occur in a training batch drawn from them).
    The paper's eq. 1 names weights w_{y_n} but not how they were set; inverse frequency is the usual
    choice for the imbalance the paper discusses.
    """
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be a non-empty array of class indices in 0..{num_classes - 1}")
    counts = np.bincount(labels, minlength=num_classes)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = labels.size / (present.sum() * counts[present])
    return weights


@keras.saving.register_keras_serializable(package="cmu")
class ClassWeightedCrossEntropy(keras.losses.Loss):
    """Class-weighted mean cross-entropy, eq. 1-2 (PyTorch `CrossEntropyLoss(weight=w)`, mean reduction).

    Per batch: loss = sum_n w[y_n] * l_n / sum_n w[y_n], with l_n = -log p_n[y_n] (eq. 2). This differs from
    Keras' `fit(class_weight=...)`, which divides by the batch size instead of the summed weights.
    y_true: integer class indices (or one-hot rows); y_pred: class probabilities.
    """

    def __init__(self, class_weights: Sequence[float], name: str = "class_weighted_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(weight) for weight in class_weights]

    def call(self, y_true, y_pred):
        num_classes = len(self.class_weights)
        if len(y_true.shape) == 2 and y_true.shape[-1] == num_classes and num_classes > 1:
            y_true = ops.argmax(y_true, axis=-1)
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        per_sample = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        sample_weights = ops.take(ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype), labels)
        # Keras averages what `call` returns over the batch; dividing by the mean weight turns that
        # average into eq. 1's sum_n w l_n / sum_n w.
        return per_sample * sample_weights / ops.maximum(ops.mean(sample_weights), keras.config.epsilon())

    def get_config(self) -> dict:
        return {**super().get_config(), "class_weights": self.class_weights}


def weighted_categorical_crossentropy(
    class_weights: Sequence[float] | np.ndarray,
) -> ClassWeightedCrossEntropy:
    """The loss of eq. 1-2 with these per-class weights.

    All ones gives plain mean cross-entropy, which is what the authors' code ran."""
    return ClassWeightedCrossEntropy(list(np.asarray(class_weights, dtype=np.float64)))
