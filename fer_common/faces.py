"""Finding faces with OpenCV's frontal-face Haar cascade, as the Neamtiu and CMU "Static2Live" demos do."""

from __future__ import annotations

import cv2
import numpy as np

from fer_common.errors import FerError

CASCADE_FILE = "haarcascade_frontalface_default.xml"
SCALE_FACTOR = 1.2  # 1.1 finds the same faces here at half the speed
MIN_NEIGHBORS = 5
# The smallest face searched for is this fraction of the frame's shorter side (24 px at least, the
# cascade's own window): tiny detections in a large frame are almost always texture, not faces.
MIN_FACE_FRACTION = 0.08
CASCADE_WINDOW = 24

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


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


class FaceDetector:
    """Every frontal face in a frame. Frames are OpenCV's: BGR (H, W, 3), or grayscale (H, W) / (H, W, 1)."""

    def __init__(self, scale_factor: float = SCALE_FACTOR, min_neighbors: int = MIN_NEIGHBORS) -> None:
        self.cascade = _load_cascade()
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Face boxes, largest first."""
        gray = _to_gray(frame)
        side = max(CASCADE_WINDOW, round(MIN_FACE_FRACTION * min(gray.shape[:2])))
        found = self.cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        boxes = [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
        return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)

    @staticmethod
    def crop(frame: np.ndarray, box: Box) -> np.ndarray:
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


def _to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    if frame.shape[-1] == 1:
        return frame[..., 0]
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
