"""`fer-replicate bench-detectors`: detection rate, false positives and speed of each face detector.

Three sets, each with known face boxes:
- CFD: the 823 photos (256x256, one centred frontal face each), on a grey border that makes them 640x480.
- CK+48: one frame per sequence (every third file: each sequence keeps its last three frames), the 48x48
  face crop upscaled 4x to 192x192 and centred on a grey 640x480 canvas, so the detector sees context.
- synthetic video: 640x480 frames of CFD faces 40-200 px wide, some turned 20-30 degrees, half mirrored,
  on a smooth random background, written with cv2.VideoWriter and read back (`synthetic_frames`, seeded).

A detection is a hit when its box overlaps a true face box with IoU >= 0.5 (each true box matched once);
every other detection is a false positive. Speed is frames per second of `detect` on the 640x480 frames.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_common.data.images import list_image_files
from fer_common.data.integrity import content_checksum
from fer_common.faces import DETECTORS, Box, make_face_detector
from fer_common.provenance import machine_provenance
from fer_common.records import write_measurement

FRAME_SIZE = (640, 480)  # width, height
GREY = 128
IOU_HIT = 0.5
# In a CFD photo (256x256) the face (brows to chin, ear to ear) lies in this box; both detectors' median
# boxes on CFD are within a few pixels of it.
CFD_FACE_BOX: Box = (60, 64, 136, 136)
CKPLUS_SCALE = 4
CKPLUS_EVERY = 3  # CK+48 keeps the last three frames of each sequence: one of them per sequence
# The synthetic video.
VIDEO_FRAMES = 60
VIDEO_FPS = 10.0
FACES_PER_FRAME = (1, 4)
FACE_WIDTHS = (40, 200)
TURNED_SHARE = 0.4  # of faces turned by 20-30 degrees either way; the others by at most 5
TURNED_DEGREES = (20.0, 30.0)
CONTEXT = 1.5  # the pasted patch is this many face widths wide: hair, ears and neck around the face

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledFrame:
    image: np.ndarray  # BGR
    faces: tuple[Box, ...]  # the true face boxes


@dataclass(frozen=True)
class SetScore:
    images: int
    faces: int
    hits: int
    false_positives: int
    seconds: float

    @property
    def detection_rate(self) -> float:
        return self.hits / self.faces if self.faces else 0.0

    @property
    def fps(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def iou(first: Box, second: Box) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    left, top = max(first[0], second[0]), max(first[1], second[1])
    right = min(first[0] + first[2], second[0] + second[2])
    bottom = min(first[1] + first[3], second[1] + second[3])
    overlap = max(0, right - left) * max(0, bottom - top)
    union = first[2] * first[3] + second[2] * second[3] - overlap
    return overlap / union if union > 0 else 0.0


def count_hits(detected: Sequence[Box], true_faces: Sequence[Box]) -> int:
    """True faces matched by a detection with IoU >= 0.5, greedily by best overlap, each detection used once."""
    pairs = sorted(
        ((iou(found, face), d, t) for d, found in enumerate(detected) for t, face in enumerate(true_faces)),
        reverse=True,
    )
    used_detections: set[int] = set()
    used_faces: set[int] = set()
    for overlap, d, t in pairs:
        if overlap < IOU_HIT:
            break
        if d not in used_detections and t not in used_faces:
            used_detections.add(d)
            used_faces.add(t)
    return len(used_faces)


def _centre_on_canvas(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """`image` (BGR) in the middle of a grey 640x480 canvas, and its top-left corner there."""
    width, height = FRAME_SIZE
    canvas = np.full((height, width, 3), GREY, dtype=np.uint8)
    left, top = (width - image.shape[1]) // 2, (height - image.shape[0]) // 2
    canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    return canvas, (left, top)


def cfd_frames(photos: Iterable[Path]) -> Iterable[LabelledFrame]:
    for path in photos:
        canvas, (left, top) = _centre_on_canvas(cv2.imread(str(path)))
        x, y, width, height = CFD_FACE_BOX
        yield LabelledFrame(canvas, ((x + left, y + top, width, height),))


def ckplus_frames(crops: Iterable[Path]) -> Iterable[LabelledFrame]:
    for path in crops:
        face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        side = face.shape[0] * CKPLUS_SCALE
        face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        canvas, (left, top) = _centre_on_canvas(cv2.cvtColor(face, cv2.COLOR_GRAY2BGR))
        yield LabelledFrame(canvas, ((left, top, side, side),))


def _background(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field: blobs of light and shade, like a room out of focus."""
    width, height = FRAME_SIZE
    coarse = rng.uniform(40, 220, size=(6, 8, 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _face_patch(photo: np.ndarray, face_width: int, degrees: float, mirrored: bool) -> np.ndarray:
    """A square BGRA patch `CONTEXT` face widths wide around the CFD face, turned, with a soft oval alpha."""
    x, y, width, height = CFD_FACE_BOX
    centre_x, centre_y = x + width / 2, y + height / 2
    half = CONTEXT * width / 2
    patch = photo[round(centre_y - half) : round(centre_y + half), round(centre_x - half) : round(centre_x + half)]
    if mirrored:
        patch = patch[:, ::-1]
    side = round(CONTEXT * face_width)
    patch = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    patch = cv2.warpAffine(patch, turn, (side, side), borderMode=cv2.BORDER_REPLICATE)
    alpha = np.zeros((side, side), dtype=np.uint8)
    cv2.ellipse(alpha, (side // 2, side // 2), (side * 2 // 5, side // 2 - 1), 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), side / 20)
    return np.dstack([patch, alpha])


def _paste(frame: np.ndarray, patch: np.ndarray, left: int, top: int) -> None:
    side = patch.shape[0]
    alpha = patch[..., 3:].astype(np.float32) / 255
    region = frame[top : top + side, left : left + side].astype(np.float32)
    frame[top : top + side, left : left + side] = (alpha * patch[..., :3] + (1 - alpha) * region).round()


def _place(rng: np.random.Generator, side: int, taken: list[Box]) -> tuple[int, int] | None:
    """A top-left corner where a `side` px patch fits in the frame without covering another; None if none found."""
    width, height = FRAME_SIZE
    for _ in range(50):
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        if all(iou((left, top, side, side), other) == 0 for other in taken):
            return left, top
    return None


def synthetic_frames(photos: Sequence[Path], seed: int = 0, frames: int = VIDEO_FRAMES) -> list[LabelledFrame]:
    """640x480 frames of CFD faces at several sizes and turns; the same `photos` and `seed` give the same frames."""
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(frames):
        image = _background(rng)
        patches: list[Box] = []
        faces: list[Box] = []
        for _ in range(int(rng.integers(FACES_PER_FRAME[0], FACES_PER_FRAME[1] + 1))):
            face_width = int(rng.integers(FACE_WIDTHS[0], FACE_WIDTHS[1] + 1))
            turned = rng.random() < TURNED_SHARE
            degrees = float(rng.uniform(*TURNED_DEGREES) if turned else rng.uniform(0, 5)) * rng.choice([-1, 1])
            mirrored = bool(rng.random() < 0.5)
            photo = cv2.imread(str(photos[int(rng.integers(len(photos)))]))
            patch = _face_patch(photo, face_width, degrees, mirrored)
            corner = _place(rng, patch.shape[0], patches)
            if corner is None:
                continue
            _paste(image, patch, *corner)
            patches.append((*corner, patch.shape[0], patch.shape[0]))
            margin = (patch.shape[0] - face_width) // 2
            faces.append((corner[0] + margin, corner[1] + margin, face_width, face_width))
        made.append(LabelledFrame(image, tuple(faces)))
    return made


def write_video(path: Path, frames: Sequence[LabelledFrame]) -> None:
    """The frames as a Motion-JPEG AVI (every OpenCV build can write and read it)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, FRAME_SIZE)
    try:
        for frame in frames:
            writer.write(frame.image)
    finally:
        writer.release()


def read_video(path: Path, frames: Sequence[LabelledFrame]) -> list[LabelledFrame]:
    """The decoded frames of the written video, each with its true boxes: detectors see what a codec left."""
    capture = cv2.VideoCapture(str(path))
    decoded = []
    try:
        for frame in frames:
            ok, image = capture.read()
            if not ok:
                raise RuntimeError(f"{path} ended after {len(decoded)} of {len(frames)} frames")
            decoded.append(LabelledFrame(image, frame.faces))
    finally:
        capture.release()
    return decoded


def score(detector_name: str, frames: Sequence[LabelledFrame]) -> SetScore:
    detector = make_face_detector(detector_name)
    detector.detect(frames[0].image)  # the first call allocates; keep it out of the timing
    hits = false_positives = 0
    seconds = 0.0
    for frame in frames:
        started = time.perf_counter()
        boxes = detector.detect(frame.image)
        seconds += time.perf_counter() - started
        found = count_hits(boxes, frame.faces)
        hits += found
        false_positives += len(boxes) - found
    faces = sum(len(frame.faces) for frame in frames)
    return SetScore(len(frames), faces, hits, false_positives, seconds)


def benchmark_sets(data_dir: Path, seed: int = 0) -> dict[str, list[LabelledFrame]]:
    photos = list_image_files(data_dir / "cfd")
    crops = _ckplus_files(data_dir)[::CKPLUS_EVERY]
    synthetic = synthetic_frames(photos, seed)
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "synthetic.avi"
        write_video(video, synthetic)
        decoded = read_video(video, synthetic)
    return {"cfd": list(cfd_frames(photos)), "ckplus48": list(ckplus_frames(crops)), "synthetic_video": decoded}


def _ckplus_files(data_dir: Path) -> list[Path]:
    """Every CK+48 crop, by class folder then name, so a sequence's frames are neighbours."""
    return sorted((data_dir / "ckplus48").glob("*/*.png"))


def run_detector_bench(
    data_dir: Path, output_dir: Path | None = None, *, seed: int = 0, command: str | None = None, write: bool = True
) -> tuple[dict, Path | None]:
    """Score every detector on every set; the record goes to results/bench/detectors-<time>-<commit>.json
    (or `output_dir`) unless `write` is False."""
    sets = benchmark_sets(data_dir, seed)
    scores = {}
    for name in DETECTORS:
        scores[name] = {}
        for set_name, frames in sets.items():
            log.info("%s on %s (%d frames)", name, set_name, len(frames))
            result = score(name, frames)
            scores[name][set_name] = {
                **asdict(result),
                "detection_rate": result.detection_rate,
                "fps": result.fps,
            }
    record = {
        "kind": "face_detector_benchmark",
        "provenance": machine_provenance(command),
        "dataset_checksums": {
            "cfd": content_checksum(list_image_files(data_dir / "cfd"), data_dir / "cfd"),
            "ckplus48": content_checksum(_ckplus_files(data_dir), data_dir / "ckplus48"),
        },
        "protocol": {
            "frame_size": list(FRAME_SIZE),
            "iou_hit": IOU_HIT,
            "cfd_face_box": list(CFD_FACE_BOX),
            "ckplus_scale": CKPLUS_SCALE,
            "ckplus_every": CKPLUS_EVERY,
            "video_seed": seed,
            "video_frames": VIDEO_FRAMES,
            "face_widths": list(FACE_WIDTHS),
            "turned_share": TURNED_SHARE,
            "turned_degrees": list(TURNED_DEGREES),
        },
        "scores": scores,
    }
    if not write:
        return record, None
    return record, write_measurement(record, "detectors", output_dir)
