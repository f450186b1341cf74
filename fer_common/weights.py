"""Loading pretrained weights the user supplies, with errors that say what to do.

No weights are downloaded: the user puts a file in place. Three formats load:

* Keras 3 `.weights.h5` (from `model.save_weights`),
* legacy Keras `.h5` (from `model.save(...h5)` or the files keras.applications caches),
* `.npz` of PyTorch state_dict arrays (`np.savez(path, **{k: v.numpy() for k, v in sd.items()})`),
  matched to Keras layers by name: torch module `layer1.0.conv1` is Keras layer `layer1_0_conv1`.

Shapes are checked before anything is assigned, so a wrong file never half-loads a model.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection
from pathlib import Path

import h5py
import keras
import numpy as np

from fer_common.errors import WeightsError

_HOW_TO_SKIP = "or run with `--weights none` to train from scratch (the result is then labelled 'from scratch')"

# PyTorch parameter suffix -> Keras variable name, per Keras layer type.
_TORCH_TO_KERAS_NAMES: dict[type, dict[str, str]] = {
    keras.layers.Conv2D: {"weight": "kernel", "bias": "bias"},
    keras.layers.Dense: {"weight": "kernel", "bias": "bias"},
    keras.layers.BatchNormalization: {
        "weight": "gamma",
        "bias": "beta",
        "running_mean": "moving_mean",
        "running_var": "moving_variance",
    },
}
# PyTorch counts BatchNorm updates in a buffer Keras does not have.
_TORCH_KEYS_WITHOUT_KERAS_VARIABLE = ("num_batches_tracked",)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, for provenance records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keras_applications_weights_path(filename: str) -> Path | None:
    """The cached keras.applications weights file `filename`, or None when it is not cached.

    Looks where Keras caches downloads: `$KERAS_HOME/models` when KERAS_HOME is set, then `~/.keras/models`.
    """
    folders = []
    if os.environ.get("KERAS_HOME"):
        folders.append(Path(os.environ["KERAS_HOME"]).expanduser() / "models")
    folders.append(Path.home() / ".keras" / "models")
    for folder in folders:
        candidate = folder / filename
        if candidate.is_file():
            return candidate
    return None


def load_weights_file(
    model: keras.Model,
    path: str | Path,
    *,
    expected_name: str,
    how_to_get: str = "",
    skip_torch_modules: Collection[str] = (),
) -> None:
    """Load the weights in `path` (.weights.h5, .h5 or torchvision-style .npz) into `model`.

    expected_name: what the file is, in words, e.g. "ImageNet ResNet18 weights (.npz)"; used in errors.
    how_to_get: optional extra instructions appended to the missing-file error.
    skip_torch_modules: .npz only; torch module names (e.g. "fc") left out, such as a head being replaced.
    Raises WeightsError when the file is missing, unreadable or does not fit the model.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        message = f"{expected_name} not found: put the file at {path}, {_HOW_TO_SKIP}."
        raise WeightsError(f"{message} {how_to_get}".strip())
    if path.suffix == ".npz":
        _load_torch_npz(model, path, expected_name=expected_name, skip_modules=skip_torch_modules)
    elif path.suffix == ".h5":
        _load_keras_h5(model, path, expected_name=expected_name)
    else:
        message = f"{expected_name}: {path} is not a Keras .weights.h5/.h5 file nor a .npz of torch arrays."
        raise WeightsError(f"{message} {how_to_get}".strip())


def _mismatch_error(
    expected_name: str, path: Path, layer_description: str, file_shape: tuple, model_shape: tuple
) -> WeightsError:
    return WeightsError(
        f"{expected_name} in {path} do not fit the model: layer {layer_description} has shape "
        f"{tuple(file_shape)} in the file but {tuple(model_shape)} in the model (the file is for another "
        f"architecture, input size or number of classes). Use the matching file, {_HOW_TO_SKIP}."
    )


# ---- Keras HDF5 files ----------------------------------------------------------------------------------


def _load_keras_h5(model: keras.Model, path: Path, *, expected_name: str) -> None:
    try:
        with h5py.File(path, "r") as handle:
            saved = _saved_keras_shapes(handle, model)
    except OSError as error:
        raise WeightsError(f"{expected_name}: {path} is not a readable HDF5 file ({error}).") from error
    # Compare layer by layer in the order Keras loads them, so the first mismatch is the one named.
    for layer_name, file_shapes in saved:
        layer = model.get_layer(layer_name)
        model_shapes = [tuple(variable.shape) for variable in layer.weights]
        for file_shape, model_shape in zip(file_shapes, model_shapes, strict=False):
            if file_shape != model_shape:
                raise _mismatch_error(expected_name, path, f"`{layer_name}`", file_shape, model_shape)
        if len(file_shapes) != len(model_shapes):
            raise WeightsError(
                f"{expected_name} in {path} do not fit the model: layer `{layer_name}` has "
                f"{len(file_shapes)} weight arrays in the file but {len(model_shapes)} in the model. "
                f"Use the matching file, {_HOW_TO_SKIP}."
            )
    try:
        model.load_weights(path)
    except ValueError as error:  # structure differences the shape check cannot see (layer counts, nesting)
        raise WeightsError(f"{expected_name} in {path} do not fit the model: {str(error)[:600]}") from error


def _saved_keras_shapes(handle: h5py.File, model: keras.Model) -> list[tuple[str, list[tuple]]]:
    """(model layer name, weight shapes in the file) for each model layer with weights, in load order."""
    layers_with_weights = [layer for layer in model.layers if layer.weights]
    if "layers" in handle:  # Keras 3 .weights.h5: groups named after the layer's class, numbered by order
        shapes = []
        for layer, group_name in zip(model.layers, _keras3_group_names(model.layers), strict=True):
            variables = handle.get(f"layers/{group_name}/vars")
            if layer.weights and variables is not None:
                shapes.append((layer.name, [variables[str(i)].shape for i in range(len(variables))]))
        return shapes
    # Legacy .h5: whole-model files keep the weights under `model_weights`; layers pair up by order.
    whole_model_file = "layer_names" not in handle.attrs and "model_weights" in handle
    group = handle["model_weights"] if whole_model_file else handle
    saved_layers = [_text(name) for name in group.attrs.get("layer_names", [])]
    saved_layers = [name for name in saved_layers if len(group[name].attrs.get("weight_names", []))]
    shapes = []
    for layer, saved_name in zip(layers_with_weights, saved_layers, strict=False):
        weight_names = [_text(name) for name in group[saved_name].attrs["weight_names"]]
        shapes.append((layer.name, [group[saved_name][name].shape for name in weight_names]))
    return shapes


def _keras3_group_names(layers: list[keras.Layer]) -> list[str]:
    """The group names Keras 3 gives layers in a .weights.h5 file: snake-case class name, then _1, _2..."""
    used: dict[str, int] = {}
    names = []
    for layer in layers:
        base = _snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        names.append(base if used[base] == 0 else f"{base}_{used[base]}")
    return names


def _snake_case(class_name: str) -> str:
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _text(value: bytes | str) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else value


# ---- PyTorch state_dict arrays (.npz) -----------------------------------------------------------------


def _load_torch_npz(model: keras.Model, path: Path, *, expected_name: str, skip_modules: Collection[str]) -> None:
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise WeightsError(f"{expected_name}: {path} is not a readable .npz file ({error}).") from error
    by_module: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        module, _, parameter = key.rpartition(".")
        if parameter in _TORCH_KEYS_WITHOUT_KERAS_VARIABLE or module in skip_modules:
            continue
        by_module.setdefault(module, {})[parameter] = array

    module_by_layer_name = {_keras_layer_name(module): module for module in by_module}
    layer_names = {layer.name for layer in model.layers}
    unknown = sorted(module for name, module in module_by_layer_name.items() if name not in layer_names)
    if unknown:
        raise WeightsError(
            f"{expected_name} in {path} do not fit the model: it has arrays for torch module(s) "
            f"{', '.join(unknown[:5])} that the model lacks. Use the matching file, {_HOW_TO_SKIP}."
        )
    # Prepare every layer first and assign only when all fit, so a bad file changes nothing.
    skipped_layers = {_keras_layer_name(module) for module in skip_modules}
    assignments = []
    for layer in model.layers:
        if not layer.weights or layer.name in skipped_layers:
            continue
        module = module_by_layer_name.get(layer.name)
        if module is None:
            raise WeightsError(
                f"{expected_name} in {path} do not fit the model: it has no arrays for layer `{layer.name}`. "
                f"Use the matching file, {_HOW_TO_SKIP}."
            )
        assignments.append((layer, _keras_values(layer, module, by_module[module], expected_name, path)))
    for layer, values in assignments:
        layer.set_weights(values)


def _keras_layer_name(torch_module: str) -> str:
    return torch_module.replace(".", "_")


def _keras_values(
    layer: keras.Layer, module: str, parameters: dict[str, np.ndarray], expected_name: str, path: Path
) -> list[np.ndarray]:
    """The layer's weights, in Keras order and layout, from one torch module's arrays."""
    names = next((names for kind, names in _TORCH_TO_KERAS_NAMES.items() if isinstance(layer, kind)), None)
    if names is None:
        raise WeightsError(f"{expected_name}: cannot map torch arrays onto Keras layer type {type(layer).__name__}.")
    by_keras_name = {names[parameter]: array for parameter, array in parameters.items() if parameter in names}
    values = []
    for variable in layer.weights:
        if variable.name not in by_keras_name:
            raise WeightsError(
                f"{expected_name} in {path} do not fit the model: torch module `{module}` has no array for "
                f"Keras `{layer.name}/{variable.name}`. Use the matching file, {_HOW_TO_SKIP}."
            )
        value = _to_keras_layout(by_keras_name[variable.name], variable.name)
        if value.shape != tuple(variable.shape):
            # Report both shapes in torch layout: that is how the user's file is written.
            model_shape = _to_torch_layout_shape(tuple(variable.shape), variable.name)
            torch_key = f"{module}.{_torch_parameter(names, variable.name)}"
            description = f"`{layer.name}` (torch `{torch_key}`, shapes in torch layout)"
            file_shape = by_keras_name[variable.name].shape
            raise _mismatch_error(expected_name, path, description, file_shape, model_shape)
        values.append(value.astype(variable.dtype))
    return values


def _torch_parameter(names: dict[str, str], keras_variable: str) -> str:
    return next(parameter for parameter, name in names.items() if name == keras_variable)


def _to_keras_layout(array: np.ndarray, keras_variable: str) -> np.ndarray:
    """Conv kernels OIHW -> HWIO and dense kernels (out, in) -> (in, out); the rest is unchanged."""
    if keras_variable == "kernel" and array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if keras_variable == "kernel" and array.ndim == 2:
        return array.T
    return array


def _to_torch_layout_shape(shape: tuple, keras_variable: str) -> tuple:
    if keras_variable == "kernel" and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    if keras_variable == "kernel" and len(shape) == 2:
        return (shape[1], shape[0])
    return shape
