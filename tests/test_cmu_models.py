"""CMU replication pieces: baseline CNN, torchvision-layout ResNet18 and its weights, class-weighted loss."""

import hashlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from fer_common.data.affectnet import load_affectnet
from fer_common.errors import WeightsError
from fer_common.weights import keras_applications_weights_path, load_weights_file, sha256_file
from replications.cmu.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_baseline,
    build_resnet18,
    class_weights,
    load_torchvision_resnet18,
    weighted_categorical_crossentropy,
)

from .helpers import REPO_ROOT, requires_dataset
from .test_affectnet import make_list_file_edition

# sum(p.numel() for p in torchvision.models.resnet18().parameters())
TORCHVISION_RESNET18_PARAMETERS = 11_689_512
SMALL_RGB = (32, 32, 3)  # weight shapes do not depend on the input size, so tests build small models


def _torchvision_resnet18_keys() -> list[str]:
    """torchvision resnet18's state_dict keys, written out from its architecture."""
    batch_norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight", *(f"bn1.{name}" for name in batch_norm)]
    for stage in range(1, 5):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            pairs = [(f"{prefix}.conv1", f"{prefix}.bn1"), (f"{prefix}.conv2", f"{prefix}.bn2")]
            if stage > 1 and block == 0:
                pairs.append((f"{prefix}.downsample.0", f"{prefix}.downsample.1"))
            for conv, norm in pairs:
                keys += [f"{conv}.weight", *(f"{norm}.{name}" for name in batch_norm)]
    return [*keys, "fc.weight", "fc.bias"]


def _fake_torchvision_state(model: keras.Model, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Random arrays in torchvision's layout and naming for `model`, and the Keras values they must become.

    Kernels have standard deviation 1/sqrt(fan-in) and scales and variances lie in 0.5..1.5, so activations
    stay finite through all 18 layers and the numerical comparisons below mean something."""
    rng = np.random.default_rng(seed)
    torch_name = {
        "kernel": "weight",
        "bias": "bias",
        "gamma": "weight",
        "beta": "bias",
        "moving_mean": "running_mean",
        "moving_variance": "running_var",
    }
    state, expected = {}, {}
    for layer in model.layers:
        for variable in layer.weights:
            if variable.name in ("gamma", "moving_variance"):
                value = rng.uniform(0.5, 1.5, size=variable.shape)
            elif variable.name == "kernel":
                value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(variable.shape[:-1])), size=variable.shape)
            else:
                value = rng.normal(0.0, 0.1, size=variable.shape)
            value = value.astype(np.float32)
            expected[variable.path] = value
            if variable.name == "kernel":  # Keras HWIO -> torch OIHW, Keras (in, out) -> torch (out, in)
                value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
            state[f"{layer.name.replace('_', '.')}.{torch_name[variable.name]}"] = value
        if isinstance(layer, keras.layers.BatchNormalization):
            state[f"{layer.name.replace('_', '.')}.num_batches_tracked"] = np.array(7)
    return state, expected


@pytest.fixture(scope="module")
def imagenet_npz(tmp_path_factory):
    """A fake ImageNet ResNet18 .npz (1000-class head) and the Keras values each variable must receive."""
    state, expected = _fake_torchvision_state(build_resnet18(SMALL_RGB, 1000))
    path = tmp_path_factory.mktemp("weights") / "resnet18_imagenet_torchvision.npz"
    np.savez(path, **state)
    return path, state, expected


def _torch_conv2d(images: np.ndarray, kernel_oihw: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """PyTorch's conv2d (cross-correlation, symmetric zero padding, no bias) on NHWC arrays, in NumPy."""
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kernel_height, kernel_width = kernel_oihw.shape[2:]
    out_height = (padded.shape[1] - kernel_height) // stride + 1
    out_width = (padded.shape[2] - kernel_width) // stride + 1
    output = np.zeros((images.shape[0], out_height, out_width, kernel_oihw.shape[0]))
    for row in range(kernel_height):
        for column in range(kernel_width):
            rows = slice(row, row + stride * out_height, stride)
            columns = slice(column, column + stride * out_width, stride)
            output += padded[:, rows, columns] @ kernel_oihw[:, :, row, column].T
    return output


# ---- architectures -----------------------------------------------------------------------------------------


def test_resnet18_has_torchvisions_parameter_count_and_layout():
    model = build_resnet18((224, 224, 3), 1000)
    trainable = sum(int(np.prod(variable.shape)) for variable in model.trainable_weights)
    assert trainable == TORCHVISION_RESNET18_PARAMETERS
    # Keras also counts BatchNorm's running mean and variance (torch buffers): 2 x 4800 channels.
    assert model.count_params() == TORCHVISION_RESNET18_PARAMETERS + 2 * 4800
    assert model.get_layer("maxpool").output.shape[1:] == (56, 56, 64)
    assert model.get_layer("layer4_1_relu2").output.shape[1:] == (7, 7, 512)
    assert model.output_shape == (None, 1000)
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(layer.epsilon == 1e-5 and layer.momentum == 0.9 for layer in batch_norms)


def test_resnet18_layer_names_mirror_torchvision_state_dict_keys():
    model = build_resnet18(SMALL_RGB, 1000)
    state, _ = _fake_torchvision_state(model)
    assert sorted(state) == sorted(_torchvision_resnet18_keys())


def test_resnet18_without_top_gives_pooled_features():
    model = build_resnet18(SMALL_RGB, 8, include_top=False)
    assert model.output_shape == (None, 512)
    assert "fc" not in [layer.name for layer in model.layers]


def test_resnet18_convs_of_one_shape_start_from_different_kernels():
    keras.utils.set_random_seed(0)
    model = build_resnet18(SMALL_RGB, 8)
    first, second = (model.get_layer(name).get_weights()[0] for name in ("layer1_0_conv1", "layer1_0_conv2"))
    assert first.shape == second.shape
    assert not np.array_equal(first, second)


def _resnet18_weights_digest_in_a_fresh_process() -> str:
    script = (
        "import hashlib, keras\n"
        "from replications.cmu.models import build_resnet18\n"
        "keras.utils.set_random_seed(0)\n"
        f"model = build_resnet18({SMALL_RGB!r}, 8)\n"
        "print(hashlib.sha256(b''.join(w.tobytes() for w in model.get_weights())).hexdigest())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return done.stdout.split()[-1]


def test_resnet18_initial_weights_are_a_function_of_the_seed_alone():
    """Two processes, the same seed: the same weights (an initializer seeded at import would differ)."""
    assert _resnet18_weights_digest_in_a_fresh_process() == _resnet18_weights_digest_in_a_fresh_process()


def test_baseline_is_five_conv_pool_layers_then_one_linear_layer():
    model = build_baseline((64, 64, 3), 8)
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convolutions) == 5
    assert all(layer.kernel_size == (3, 3) and layer.padding == "same" for layer in convolutions)
    assert all(20 <= layer.filters <= 50 for layer in convolutions)
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 5
    assert [type(layer).__name__ for layer in model.layers[-2:]] == ["Flatten", "Dense"]
    images = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3)).astype("float32")
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (2, 8)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


# ---- torchvision weights -----------------------------------------------------------------------------------


def test_torchvision_npz_loads_every_array_into_a_fresh_model(imagenet_npz):
    path, _, expected = imagenet_npz
    model = build_resnet18(SMALL_RGB, 1000)
    load_torchvision_resnet18(model, path)
    for variable in model.weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), expected[variable.path])


def test_loaded_resnet18_computes_what_torch_would(imagenet_npz):
    """conv1 (7x7/2, pad 3), a strided block conv (3x3/2, pad 1) and fc, recomputed with PyTorch's rules."""
    path, state, _ = imagenet_npz
    model = build_resnet18(SMALL_RGB, 1000)
    load_torchvision_resnet18(model, path)
    images = np.random.default_rng(1).uniform(0, 255, size=(2, *SMALL_RGB)).astype("float32")
    names = ["conv1", "layer1_1_relu2", "layer2_0_conv1", "avgpool", "fc"]
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    conv1, layer1_out, layer2_conv1, pooled, probabilities = probe.predict(images, verbose=0)

    outputs = (conv1, layer1_out, layer2_conv1, pooled, probabilities)
    assert all(np.isfinite(output).all() for output in outputs)
    normalised = (images / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    expected_conv1 = _torch_conv2d(normalised, state["conv1.weight"], stride=2, padding=3)
    np.testing.assert_allclose(conv1, expected_conv1, rtol=1e-4, atol=1e-4)
    expected_layer2 = _torch_conv2d(layer1_out, state["layer2.0.conv1.weight"], stride=2, padding=1)
    np.testing.assert_allclose(layer2_conv1, expected_layer2, rtol=1e-4, atol=1e-4)
    logits = pooled @ state["fc.weight"].T + state["fc.bias"]
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected_probabilities = softmax / softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=1e-4, atol=1e-7)


def test_fine_tuning_head_is_skipped_and_keeps_fresh_weights(imagenet_npz):
    path, _, expected = imagenet_npz
    for model in (build_resnet18(SMALL_RGB, 8), build_resnet18(SMALL_RGB, 8, include_top=False)):
        fresh_head = [keras.ops.convert_to_numpy(v) for v in model.weights if v.path.startswith("fc/")]
        load_torchvision_resnet18(model, path)
        conv1 = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
        np.testing.assert_array_equal(conv1, expected["conv1/kernel"])
        loaded_head = [keras.ops.convert_to_numpy(v) for v in model.weights if v.path.startswith("fc/")]
        assert all(np.array_equal(a, b) for a, b in zip(fresh_head, loaded_head, strict=True))


def test_wrong_shape_names_the_layer_and_both_shapes_and_changes_nothing(imagenet_npz, tmp_path):
    _, state, _ = imagenet_npz
    wrong = dict(state, **{"layer2.0.conv1.weight": np.zeros((128, 32, 3, 3), np.float32)})
    np.savez(tmp_path / "wrong.npz", **wrong)
    model = build_resnet18(SMALL_RGB, 1000)
    before = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
    with pytest.raises(WeightsError) as raised:
        load_torchvision_resnet18(model, tmp_path / "wrong.npz")
    message = str(raised.value)
    assert "`layer2_0_conv1` (torch `layer2.0.conv1.weight`" in message
    assert "(128, 32, 3, 3) in the file but (128, 64, 3, 3) in the model" in message
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel), before)


def test_npz_without_a_layers_arrays_is_refused(imagenet_npz, tmp_path):
    _, state, _ = imagenet_npz
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in state.items() if not k.startswith("layer3.1.bn2")})
    with pytest.raises(WeightsError, match="no arrays for layer `layer3_1_bn2`"):
        load_torchvision_resnet18(build_resnet18(SMALL_RGB, 1000), tmp_path / "partial.npz")


def test_missing_npz_says_where_to_put_it_and_how_to_make_it(tmp_path):
    missing = tmp_path / "resnet18_imagenet_torchvision.npz"
    with pytest.raises(WeightsError) as raised:
        load_torchvision_resnet18(build_resnet18(SMALL_RGB, 8), missing)
    message = str(raised.value)
    assert f"put the file at {missing}" in message and "--weights none" in message
    assert "torchvision.models.resnet18(weights='IMAGENET1K_V1')" in message and "np.savez" in message


# ---- Keras weight files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["baseline.weights.h5", "baseline.h5"])
def test_keras_weight_files_round_trip_and_mismatches_name_the_layer(tmp_path, file_name):
    source = build_baseline((32, 32, 3), 8)
    path = tmp_path / file_name
    source.save_weights(path) if file_name.endswith(".weights.h5") else source.save(path)
    target = build_baseline((32, 32, 3), 8)
    load_weights_file(target, path, expected_name="Baseline weights")
    for loaded, saved in zip(target.weights, source.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded), keras.ops.convert_to_numpy(saved))

    narrower = build_baseline((32, 32, 3), 8, channels=(20, 30, 40, 50, 40))
    expected = r"layer `conv5` has shape \(3, 3, 50, 50\) in the file but \(3, 3, 50, 40\) in the model"
    with pytest.raises(WeightsError, match=expected):
        load_weights_file(narrower, path, expected_name="Baseline weights")


def test_missing_keras_file_offers_weights_none(tmp_path):
    model = build_baseline(SMALL_RGB, 8)
    expected = r"VGG16 ImageNet weights not found: put the file at .*--weights none"
    with pytest.raises(WeightsError, match=expected):
        load_weights_file(model, tmp_path / "vgg16.h5", expected_name="VGG16 ImageNet weights")


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("broken.h5", "not a readable HDF5 file"),
        ("broken.npz", "not a readable .npz file"),
        ("resnet18.pth", "(?s)not a Keras .weights.h5/.h5 file nor a .npz .* np.savez"),
    ],
)
def test_unreadable_or_unknown_weight_files_are_refused(tmp_path, file_name, expected):
    (tmp_path / file_name).write_bytes(b"not weights")
    with pytest.raises(WeightsError, match=expected):
        load_torchvision_resnet18(build_resnet18(SMALL_RGB, 8), tmp_path / file_name)


def test_keras_applications_cache_lookup(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert keras_applications_weights_path("vgg16_weights.h5") is None
    home_copy = tmp_path / "home" / ".keras" / "models" / "vgg16_weights.h5"
    home_copy.parent.mkdir(parents=True)
    home_copy.write_bytes(b"home copy")
    assert keras_applications_weights_path("vgg16_weights.h5") == home_copy
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / "vgg16_weights.h5").write_bytes(b"KERAS_HOME copy")
    found = keras_applications_weights_path("vgg16_weights.h5")
    assert found == tmp_path / "keras" / "models" / "vgg16_weights.h5"
    assert sha256_file(found) == hashlib.sha256(b"KERAS_HOME copy").hexdigest()


# ---- class-weighted loss -----------------------------------------------------------------------------------


def test_class_weights_are_inverse_frequency_with_mean_sample_weight_one():
    labels = np.array([0, 0, 0, 1, 3, 3])
    weights = class_weights(labels, 4)
    # N = 6 labels, K = 3 classes present: w_c = 6 / (3 n_c); class 2 is absent.
    np.testing.assert_allclose(weights, [6 / 9, 6 / 3, 0.0, 6 / 6])
    assert weights[labels].mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="class indices in 0..3"):
        class_weights(np.array([0, 4]), 4)


def test_loss_is_the_weighted_mean_of_eq_1():
    rng = np.random.default_rng(2)
    labels = np.array([0, 1, 1, 2, 3])
    probabilities = rng.dirichlet(np.ones(4), size=5).astype("float32")
    weights = np.array([0.5, 2.0, 1.0, 4.0])
    per_sample = -np.log(probabilities[np.arange(5), labels])
    expected = (weights[labels] * per_sample).sum() / weights[labels].sum()
    loss = weighted_categorical_crossentropy(weights)
    assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-5)
    one_hot = np.eye(4, dtype="float32")[labels]
    assert float(loss(one_hot, probabilities)) == pytest.approx(expected, rel=1e-5)
    # Keras' class_weight= would divide by the batch size instead; that is a different number here.
    assert (weights[labels] * per_sample).sum() / 5 != pytest.approx(expected, rel=1e-3)
    uniform = weighted_categorical_crossentropy(np.ones(4))
    assert float(uniform(labels, probabilities)) == pytest.approx(per_sample.mean(), rel=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert float(restored(labels, probabilities)) == pytest.approx(expected, rel=1e-5)


@requires_dataset("cfd")
def test_baseline_trains_one_epoch_on_the_affectnet_fixture(tmp_path):
    make_list_file_edition(tmp_path, per_expression=4)
    dataset = load_affectnet(tmp_path, image_size=32, use_cache=False, progress=False)
    train = dataset.split("training")
    keras.utils.set_random_seed(0)
    model = build_baseline((32, 32, 3), len(dataset.class_names))
    loss = weighted_categorical_crossentropy(class_weights(train.labels, len(dataset.class_names)))
    model.compile(optimizer=keras.optimizers.Adam(5e-4), loss=loss, metrics=["accuracy"])
    history = model.fit(train.images.astype("float32"), train.labels, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    validation = dataset.split("validation")
    assert np.isfinite(model.evaluate(validation.images.astype("float32"), validation.labels, verbose=0)[0])
