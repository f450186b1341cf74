"""The live demo of Neamtiu and of CMU's "Static2Live": find every face in each frame, classify it, draw it.

Sources: a webcam index ("0"), a video file, an image file or a folder of images. A window is shown only
where a display exists; headless runs (and windowed ones too) write the annotated video or images and
every prediction to CSV and JSON.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sys
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from fer_common.bundles import Bundle
from fer_common.data.images import is_image_name, list_image_files, read_image
from fer_common.errors import FerError
from fer_common.faces import Box, FaceDetector, crop_face, make_face_detector

NO_FACE_NOTE = "no face found"
DEFAULT_VIDEO_FPS = 30.0  # for webcams and files that do not report a frame rate
PROGRESS_EVERY_SECONDS = 2.0
WINDOW_NAME = "fer-replicate demo (q to quit)"
BOX_COLOR = (0, 200, 0)  # BGR
TEXT_COLOR = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX
QUIT_KEYS = (ord("q"), 27)  # q, Esc

log = logging.getLogger(__name__)


@dataclass
class DemoSummary:
    frames: int
    frames_with_faces: int
    faces: int
    seconds: float
    fps: float  # frames processed per second of wall time: decode, detect, classify, draw, write
    predictions_csv: Path
    predictions_json: Path
    annotated_video: Path | None = None
    annotated_images: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        """What the demo did and wrote, for the person who ran it."""
        written = ([self.annotated_video] if self.annotated_video else []) + [
            self.predictions_csv,
            self.predictions_json,
        ]
        counts = f"{self.frames} frames ({self.frames_with_faces} with faces, {self.faces} faces)"
        lines = [f"{counts} in {self.seconds:.1f} s: {self.fps:.1f} frames per second"]
        return "\n".join(lines + [f"wrote {path}" for path in written])


@dataclass
class _Frame:
    image: np.ndarray  # BGR, or (H, W, 1) grayscale for grayscale image files
    time_s: float | None  # position in the video or since the webcam started; None for still images
    name: str | None  # the image file's name for image sources


def classify_faces(frame: np.ndarray, bundle: Bundle, detector: FaceDetector) -> list[dict]:
    """Every face in `frame`: box, label, confidence and the probability of each class."""
    boxes = detector.detect(frame)
    probabilities = bundle.predict([crop_face(frame, box) for box in boxes])
    return [_face_entry(box, row, bundle.class_names) for box, row in zip(boxes, probabilities, strict=True)]


def _face_entry(box: Box, probabilities: np.ndarray, class_names: Sequence[str]) -> dict:
    best = int(np.argmax(probabilities))
    return {
        "box": list(box),
        "label": class_names[best],
        "confidence": float(probabilities[best]),
        "probabilities": {name: float(p) for name, p in zip(class_names, probabilities, strict=True)},
    }


def read_frame(path: Path) -> np.ndarray:
    """An image file as an OpenCV frame (BGR, or one channel); DatasetError naming it when unreadable."""
    image = read_image(Path(path), color="auto")
    return image if image.shape[-1] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def predict_images(paths: Sequence[Path | str], bundle: Bundle, detector: FaceDetector | None = None) -> list[dict]:
    """Per image: its faces (box, label, confidence, probabilities); no face gives an empty list and a note.

    detector: default `faces.DEFAULT_DETECTOR`."""
    detector = detector or make_face_detector()
    results = []
    for path in paths:
        faces = classify_faces(read_frame(Path(path)), bundle, detector)
        results.append({"image": str(path), "faces": faces, "note": None if faces else NO_FACE_NOTE})
    return results


def display_available() -> bool:
    """False where a window cannot open: Linux without X11/Wayland, or an OpenCV built without a GUI."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return gui is not None and gui.group(1).upper() != "NONE"  # headless wheels say "GUI: NONE"


def run_demo(
    source: str | Path,
    bundle: Bundle,
    *,
    output_dir: Path | str,
    display: bool | None = None,
    max_frames: int | None = None,
    detector: FaceDetector | None = None,
) -> DemoSummary:
    """Classify every face in every frame of `source`, draw the results and write them to `output_dir`.

    display: None shows a window when one can open, False never does, True asks for one (headless
    machines still only write files). detector: default `faces.DEFAULT_DETECTOR`.
    """
    detector = detector or make_face_detector()
    output_dir = Path(output_dir)
    frames, is_video, video_fps = _open_source(str(source))
    show = _decide_display(display)
    output_dir.mkdir(parents=True, exist_ok=True)
    # The first prediction builds the model's inference function; keep that out of the measured rate.
    size, channels = bundle.preprocessing.size, bundle.preprocessing.channels
    bundle.predict([np.zeros((size, size, channels), dtype=np.uint8)])

    records: list[dict] = []
    annotated_images: list[Path] = []
    writer: cv2.VideoWriter | None = None
    video_path: Path | None = None
    started = last_progress = time.perf_counter()
    try:
        for index, frame in enumerate(islice(frames, max_frames)):
            faces = classify_faces(frame.image, bundle, detector)
            records.append({"frame": index, "time_s": frame.time_s, "image": frame.name, "faces": faces})
            annotated = annotate(frame.image, faces)
            if is_video:
                if writer is None:
                    writer, video_path = _open_writer(output_dir, video_fps, annotated.shape[1], annotated.shape[0])
                writer.write(annotated)
            else:
                annotated_images.append(_write_annotated_image(output_dir, str(frame.name), annotated))
                log.info("%s: %s", frame.name, _faces_text(faces))
            if show and not _show(annotated, wait_ms=1 if is_video else 0):
                break
            if is_video and time.perf_counter() - last_progress >= PROGRESS_EVERY_SECONDS:
                last_progress = time.perf_counter()
                log.info("frame %d: %d faces so far", index + 1, sum(len(r["faces"]) for r in records))
    except KeyboardInterrupt:
        log.warning("interrupted: writing what was processed so far")
    finally:
        frames.close()  # releases the capture when max_frames or the user stopped before its end
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    seconds = time.perf_counter() - started
    summary = DemoSummary(
        frames=len(records),
        frames_with_faces=sum(1 for record in records if record["faces"]),
        faces=sum(len(record["faces"]) for record in records),
        seconds=seconds,
        fps=len(records) / seconds if seconds > 0 else 0.0,
        predictions_csv=output_dir / "predictions.csv",
        predictions_json=output_dir / "predictions.json",
        annotated_video=video_path,
        annotated_images=annotated_images,
    )
    _write_csv(summary.predictions_csv, records, bundle.class_names)
    _write_json(summary.predictions_json, records, source, bundle, summary)
    return summary


def _open_source(source: str) -> tuple[Generator[_Frame, None, None], bool, float]:
    """(frames, is_video, frames per second); opening errors are raised here, before any output is made."""
    path = Path(source).expanduser()
    if source.strip().isdigit() and not path.exists():
        index = int(source)
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            raise FerError(f"Cannot open webcam {index}; check that it is connected and not used by another program.")
        return _capture_frames(capture, live=True), True, _capture_fps(capture)
    if path.is_dir():
        files = list_image_files(path)
        if not files:
            raise FerError(f"Folder {path} holds no images to run the demo on.")
        return _image_frames(files), False, 0.0
    if not path.is_file():
        raise FerError(f"Demo source {source!r} is neither a webcam index nor an existing file or folder.")
    if is_image_name(path.name):
        return _image_frames([path]), False, 0.0
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FerError(f"Cannot read video {path}: OpenCV cannot open it (corrupt, or not a video format).")
    return _capture_frames(capture, live=False, name=path), True, _capture_fps(capture)


def _capture_fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if 0 < fps < 1000 else DEFAULT_VIDEO_FPS


def _capture_frames(
    capture: cv2.VideoCapture, *, live: bool, name: Path | None = None
) -> Generator[_Frame, None, None]:
    fps = _capture_fps(capture)
    started = time.perf_counter()
    index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                if index == 0:
                    raise FerError(f"Cannot read video {name or 'webcam'}: it yields no frames (corrupt or empty).")
                return
            # A webcam's clock is the wall clock; a file's is its frame rate.
            time_s = time.perf_counter() - started if live else index / fps
            yield _Frame(image, time_s, None)
            index += 1
    finally:
        capture.release()


def _image_frames(files: Sequence[Path]) -> Generator[_Frame, None, None]:
    for path in files:
        yield _Frame(read_frame(path), None, path.name)


def _decide_display(requested: bool | None) -> bool:
    if requested is False:
        return False
    if display_available():
        return True
    if requested:
        log.warning("no display (or a headless OpenCV) here, so no window; writing the results to files")
    return False


def _show(annotated: np.ndarray, wait_ms: int) -> bool:
    """Show one frame; False when the user asks to stop."""
    cv2.imshow(WINDOW_NAME, annotated)
    return (cv2.waitKey(wait_ms) & 0xFF) not in QUIT_KEYS


def annotate(frame: np.ndarray, faces: Sequence[dict]) -> np.ndarray:
    """A BGR copy of `frame` with each face's box and "label confidence" drawn on it."""
    canvas = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 or frame.shape[-1] == 1 else frame.copy()
    shorter_side = min(canvas.shape[:2])
    thickness = max(1, round(shorter_side / 240))
    font_scale = max(0.4, shorter_side / 800)
    for face in faces:
        x, y, width, height = face["box"]
        cv2.rectangle(canvas, (x, y), (x + width, y + height), BOX_COLOR, thickness)
        text = f"{face['label']} {face['confidence']:.0%}"
        (text_width, text_height), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
        label_height = text_height + baseline + 4
        top = y - label_height if y >= label_height else y + height  # below the box when no room above
        cv2.rectangle(canvas, (x, top), (x + text_width + 4, top + label_height), BOX_COLOR, cv2.FILLED)
        cv2.putText(canvas, text, (x + 2, top + text_height + 2), FONT, font_scale, TEXT_COLOR, thickness, cv2.LINE_AA)
    return canvas


def _open_writer(output_dir: Path, fps: float, width: int, height: int) -> tuple[cv2.VideoWriter, Path]:
    """annotated.mp4 (mp4v); annotated.avi (MJPG) where this OpenCV cannot write MP4."""
    for name, codec in (("annotated.mp4", "mp4v"), ("annotated.avi", "MJPG")):
        path = output_dir / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if writer.isOpened():
            return writer, path
        writer.release()
        path.unlink(missing_ok=True)
    raise FerError(f"Cannot write an annotated video in {output_dir}: OpenCV opened neither MP4 (mp4v) nor AVI (MJPG).")


def _write_annotated_image(output_dir: Path, name: str, annotated: np.ndarray) -> Path:
    path = output_dir / "annotated" / name
    path.parent.mkdir(exist_ok=True)
    if not cv2.imwrite(str(path), annotated):
        raise FerError(f"Cannot write annotated image {path}.")
    return path


def _faces_text(faces: Sequence[dict]) -> str:
    if not faces:
        return NO_FACE_NOTE
    return ", ".join(f"{face['label']} {face['confidence']:.0%}" for face in faces)


def _write_csv(path: Path, records: Sequence[dict], class_names: Sequence[str]) -> None:
    """One row per face; a frame without faces gets one row with the face columns empty."""
    header = ["frame", "time_s", "image", "face", "x", "y", "width", "height", "label", "confidence"]
    header += [f"p_{name}" for name in class_names]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for record in records:
            leading = [record["frame"], _optional_round(record["time_s"]), record["image"] or ""]
            if not record["faces"]:
                writer.writerow(leading + [""] * (len(header) - len(leading)))
            for face_index, face in enumerate(record["faces"]):
                probabilities = [f"{face['probabilities'][name]:.6f}" for name in class_names]
                writer.writerow(
                    leading + [face_index, *face["box"], face["label"], f"{face['confidence']:.6f}", *probabilities]
                )


def _optional_round(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)


def _write_json(path: Path, records: Sequence[dict], source: str | Path, bundle: Bundle, summary: DemoSummary) -> None:
    document = {
        "source": str(source),
        "model": str(bundle.path),
        "class_names": bundle.class_names,
        "summary": {
            "frames": summary.frames,
            "frames_with_faces": summary.frames_with_faces,
            "faces": summary.faces,
            "seconds": round(summary.seconds, 3),
            "fps": round(summary.fps, 2),
        },
        "frames": list(records),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
