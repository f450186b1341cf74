"""Finding faces in frames: dlib's HOG detector by default, OpenCV's Haar cascade as the papers' demos used.

Neamtiu's and CMU's "Static2Live" demos find faces with OpenCV's frontal-face Haar cascade, so `haar` stays
available to replicate them. `hog` (dlib's HOG + linear SVM detector, built into the `dlib-bin` wheel: no
weights to download) is the default: in the detector benchmark (`fer-replicate bench-detectors`,
results/bench/detectors-*.json) it found every face of a video of turned and small faces where the cascade
missed a quarter, as many on CFD and CK+48, with as few false positives, at about a fifth of the cascade's
speed (8 against 40 frames per second at 640x480 on a shared 2-core CPU): `--detector haar` when speed matters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from fer_common.errors import FerError

Box = tuple[int, int, int, int]  # x, y, width, height in pixels

# The smallest face searched for is this fraction of the frame's shorter side: tiny detections in a large
# frame are almost always texture, not faces.
MIN_FACE_FRACTION = 0.08

CASCADE_FILE = "haarcascade_frontalface_default.xml"
SCALE_FACTOR = 1.2  # 1.1 finds the same faces here at half the speed
MIN_NEIGHBORS = 5
CASCADE_WINDOW = 24  # the cascade's own window, in pixels

HOG_WINDOW = 80  # dlib's frontal detector sees faces of about 80 px; each upsampling halves that


class FaceDetector(Protocol):
    """Every face in a frame. Frames are OpenCV's: BGR (H, W, 3), or grayscale (H, W) / (H, W, 1)."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Face boxes, largest first."""
        ...


def _smallest_face(frame: np.ndarray) -> int:
    return round(MIN_FACE_FRACTION * min(frame.shape[:2]))


def _largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)


def _load_cascade():
    """The frontal-face cascade; OpenCV 5 dropped both CascadeClassifier and the bundled cascade files."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None or not hasattr(cv2, "CascadeClassifier"):
        raise FerError(
            f"This OpenCV ({cv2.__version__}) has no Haar cascades; the suite needs opencv-python-headless 4.x "
            "(`pip install 'opencv-python-headless>=4.9,<5'`)."
        )
    path = folder + CASCADE_FILE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FerError(
            f"Cannot load the face detector {path}; the suite needs opencv-python-headless 4.x with its "
            "bundled Haar cascades (`pip install --force-reinstall 'opencv-python-headless>=4.9,<5'`)."
        )
    return cascade


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, as the Neamtiu and CMU demos use it."""

    name = "haar"

    def __init__(self, scale_factor: float = SCALE_FACTOR, min_neighbors: int = MIN_NEIGHBORS) -> None:
        self.cascade = _load_cascade()
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, frame: np.ndarray) -> list[Box]:
        side = max(CASCADE_WINDOW, _smallest_face(frame))
        found = self.cascade.detectMultiScale(
            to_gray(frame), scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        return _largest_first([(int(x), int(y), int(w), int(h)) for x, y, w, h in found])


def _import_dlib():
    try:
        import dlib
    except ImportError as error:
        raise FerError(
            "The `hog` face detector needs dlib, which the suite installs as the prebuilt `dlib-bin` wheel "
            "(`pip install 'dlib-bin>=20,<21'`); or choose `--detector haar`."
        ) from error
    return dlib


class HogFaceDetector:
    """dlib's frontal-face detector: HOG features and a linear SVM, sliding over an image pyramid."""

    name = "hog"

    def __init__(self) -> None:
        self.detector = _import_dlib().get_frontal_face_detector()

    def detect(self, frame: np.ndarray) -> list[Box]:
        height, width = frame.shape[:2]
        found = self.detector(to_gray(frame), _upsampling_for(_smallest_face(frame)))
        boxes = []
        for rectangle in found:
            # dlib's boxes may reach past the frame's edges; clip them so crops keep the box's size.
            left, top = max(rectangle.left(), 0), max(rectangle.top(), 0)
            right, bottom = min(rectangle.right(), width - 1), min(rectangle.bottom(), height - 1)
            boxes.append((int(left), int(top), int(right - left + 1), int(bottom - top + 1)))
        return _largest_first(boxes)


def _upsampling_for(smallest_face: int) -> int:
    """No upsampling where only faces of 80 px or more are wanted, else one (its window then sees 40 px faces).

    Each doubling of the frame makes detection about four times slower, and smaller faces are not worth it.
    """
    return 0 if smallest_face >= HOG_WINDOW else 1


DETECTORS: dict[str, Callable[[], FaceDetector]] = {"hog": HogFaceDetector, "haar": HaarFaceDetector}
DEFAULT_DETECTOR = "hog"


def make_face_detector(name: str = DEFAULT_DETECTOR) -> FaceDetector:
    """The detector called `name` (see DETECTORS); FerError naming the choices for an unknown one."""
    if name not in DETECTORS:
        raise FerError(f"Unknown face detector {name!r}; choose one of: {', '.join(DETECTORS)}.")
    return DETECTORS[name]()


def crop_face(frame: np.ndarray, box: Box) -> np.ndarray:
    """The face as uint8 (h, w, C): RGB for a colour frame, one channel for a grayscale one.

    The conversion to the model's channel count and size is left to the bundle's preprocessing
    (`train.to_model_input`), so it happens in training's order and with training's formula.
    """
    x, y, width, height = box
    face = frame[max(y, 0) : y + height, max(x, 0) : x + width]
    if face.ndim == 2:
        return face[..., None].copy()
    if face.shape[-1] == 1:
        return face.copy()
    return cv2.cvtColor(face, cv2.COLOR_BGR2RGB)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """One uint8 channel (H, W) from any OpenCV frame."""
    if frame.ndim == 2:
        return frame
    if frame.shape[-1] == 1:
        return frame[..., 0]
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
