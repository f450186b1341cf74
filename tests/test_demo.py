"""Model bundles, the face detector, `fer-replicate predict` and the headless demo, on a tiny CK+48 model."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_common import bundles, registry
from fer_common.bundles import Preprocessing, load_bundle, save_bundle
from fer_common.cli import main
from fer_common.contract import Replication
from fer_common.data.ckplus48 import CLASS_NAMES
from fer_common.data.images import read_images, scan_class_folders
from fer_common.demo import run_demo
from fer_common.errors import FerError
from fer_common.faces import crop_face, make_face_detector
from fer_common.train import to_model_input

from .helpers import requires_dataset, shared_data_dir

pytestmark = [requires_dataset("ckplus48"), requires_dataset("cfd")]

FACES_PER_CLASS = 15
BUNDLE_NAME = "chen-tiny"
VIDEO_SIZE = (640, 480)  # width, height
VIDEO_PHOTOS = 10
FRAMES_PER_PHOTO = 3


def build_tiny_model(channels: int, *, rescale_inside: bool = False):
    """A few-hundred-parameter CNN: enough to exercise every path, trained in a second."""
    import keras
    from keras import layers

    inputs = keras.Input((48, 48, channels))
    features = layers.Rescaling(1 / 255)(inputs) if rescale_inside else inputs
    features = layers.Conv2D(4, 3, activation="relu")(features)
    features = layers.MaxPooling2D(4)(features)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax")(layers.Flatten()(features))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def ckplus_faces() -> tuple[np.ndarray, np.ndarray]:
    labelled = scan_class_folders(shared_data_dir() / "ckplus48", CLASS_NAMES, "CK+48")
    chosen = [
        (path, label)
        for label in range(len(CLASS_NAMES))
        for path, _ in [item for item in labelled if item[1] == label][:FACES_PER_CLASS]
    ]
    images = read_images([path for path, _ in chosen], color="gray", size=(48, 48), progress=False)
    return images, np.array([label for _, label in chosen])


@pytest.fixture(scope="module")
def tiny_model(ckplus_faces):
    import keras

    keras.utils.set_random_seed(0)
    images, labels = ckplus_faces
    model = build_tiny_model(1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(to_model_input(images, channels=1, size=48), labels, epochs=1, batch_size=32, verbose=0)
    return model


def save_tiny_bundle(
    model, path_stem: Path, *, seed: int = 0, accuracy: float | None = None, selection_score: float | None = None
) -> Path:
    source = {"replication": "chen", "setting": "tiny", "seed": seed, "accuracy": accuracy}
    source.update(selection_score=selection_score, selected_on="validation accuracy")
    return save_bundle(
        model,
        path_stem,
        class_names=CLASS_NAMES,
        preprocessing=Preprocessing(size=48, channels=1, scale="unit"),
        source=source,
    )


@pytest.fixture(scope="module")
def saved_models_dir(tmp_path_factory, tiny_model) -> Path:
    folder = tmp_path_factory.mktemp("models")
    save_tiny_bundle(tiny_model, folder / BUNDLE_NAME)
    return folder


@pytest.fixture
def models_dir(monkeypatch, tmp_path, saved_models_dir) -> Path:
    """The tiny model's folder as FER_MODELS_DIR, and no shipped model: these tests see only the tiny one."""
    monkeypatch.setenv("FER_MODELS_DIR", str(saved_models_dir))
    monkeypatch.setattr(bundles, "PACKAGE_BUNDLES_DIR", tmp_path / "no-shipped-model")
    return saved_models_dir


@pytest.fixture(scope="module")
def cfd_photos() -> list[Path]:
    return sorted((shared_data_dir() / "cfd").glob("*.jpg"))[:VIDEO_PHOTOS]


def varied_faces(photos: list[Path]) -> list[np.ndarray]:
    """RGB face-sized crops of several sizes, as the detector hands them to a bundle."""
    faces = []
    for index, photo in enumerate(photos[:4]):
        image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        side = 60 + 37 * index
        faces.append(np.ascontiguousarray(image[40 : 40 + side, 50 : 50 + side]))
    return faces


def test_save_load_round_trip_gives_the_same_predictions(models_dir, tiny_model, ckplus_faces):
    images = ckplus_faces[0][:20]
    expected = tiny_model.predict(to_model_input(images, channels=1, size=48), verbose=0)

    by_name = load_bundle("chen")  # a bare replication id finds chen-<setting>
    by_path = load_bundle(models_dir / f"{BUNDLE_NAME}.keras")

    assert by_name.path == by_path.path == (models_dir / f"{BUNDLE_NAME}.keras").resolve()
    assert by_name.class_names == list(CLASS_NAMES)
    assert by_name.preprocessing == Preprocessing(48, 1, "unit")
    assert by_name.source["replication"] == "chen"
    np.testing.assert_allclose(by_name.predict(images), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_path.predict(list(images)), expected, rtol=1e-5, atol=1e-6)
    assert bundles.list_bundles() == [BUNDLE_NAME]
    assert not list(models_dir.glob(".*")), "temporary files left behind"


def test_unit_scale_inference_equals_training_preprocessing(models_dir, tiny_model, cfd_photos):
    faces = varied_faces(cfd_photos)
    training_input = np.concatenate([to_model_input(face[None], channels=1, size=48) for face in faces])
    preprocessing = Preprocessing(48, 1, "unit")

    np.testing.assert_array_equal(preprocessing.apply(faces), training_input)
    batch = np.stack([cv2.resize(face, (64, 64)) for face in faces])
    np.testing.assert_array_equal(preprocessing.apply(batch), to_model_input(batch, channels=1, size=48))
    assert training_input.max() <= 1.0  # the 1/255 the Neamtiu source skips at inference
    np.testing.assert_allclose(
        load_bundle(BUNDLE_NAME).predict(faces), tiny_model.predict(training_input, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_raw_scale_inference_equals_training_preprocessing(tmp_path, tiny_model, cfd_photos):
    faces = varied_faces(cfd_photos)
    raw = Preprocessing(48, 1, "raw")
    training_input = np.concatenate([to_model_input(face[None], channels=1, size=48) for face in faces])
    np.testing.assert_array_equal(raw.apply(faces), training_input * 255)

    # The same weights behind a Rescaling layer must predict what the unit-scale model predicts.
    rescaling_model = build_tiny_model(1, rescale_inside=True)
    rescaling_model.set_weights(tiny_model.get_weights())
    path = save_bundle(
        rescaling_model,
        tmp_path / "cmu-baseline",
        class_names=CLASS_NAMES,
        preprocessing=raw,
        source={"replication": "cmu"},
    )
    np.testing.assert_allclose(
        load_bundle(path).predict(faces), tiny_model.predict(training_input, verbose=0), rtol=1e-4, atol=1e-6
    )


def test_class_count_mismatch_is_refused(tmp_path, tiny_model):
    unit = Preprocessing(48, 1, "unit")
    with pytest.raises(FerError, match="model has 7 outputs but its metadata names 3 classes"):
        save_bundle(tiny_model, tmp_path / "wrong", class_names=["a", "b", "c"], preprocessing=unit, source={})

    path = save_bundle(tiny_model, tmp_path / "edited", class_names=CLASS_NAMES, preprocessing=unit, source={})
    metadata_path = path.with_suffix(".json")
    metadata = json.loads(metadata_path.read_text())
    metadata["class_names"] = ["a", "b", "c"]
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(FerError, match="model has 7 outputs but its metadata names 3 classes"):
        load_bundle(path)


def test_missing_metadata_is_named(tmp_path, models_dir):
    model_only = tmp_path / "lonely.keras"
    model_only.write_bytes((models_dir / f"{BUNDLE_NAME}.keras").read_bytes())
    with pytest.raises(FerError, match=r"lonely\.json is missing"):
        load_bundle(model_only)


def test_unknown_name_lists_the_bundles_and_how_to_make_one(models_dir):
    with pytest.raises(FerError) as raised:
        load_bundle("neamtiu")
    assert BUNDLE_NAME in str(raised.value)
    assert "make replicate-" in str(raised.value)


def test_predict_without_any_model_says_how_to_get_one(monkeypatch, tmp_path, cfd_photos, capsys):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr("fer_common.bundles.PACKAGE_BUNDLES_DIR", tmp_path / "no-shipped-model")
    assert main(["predict", str(cfd_photos[0])]) == 2
    error = capsys.readouterr().err
    assert "No trained model is available" in error and "make replicate-neamtiu" in error


class DemoPaper(Replication):
    """A replication that offers the demo's model, for the default-model test."""

    metadata_file = Path("demo_paper") / "metadata.yaml"
    demo_bundle = "demo_paper"

    def prepare(self, config):
        raise NotImplementedError


def test_the_default_model_is_the_bundle_a_replication_offers_for_the_demo(monkeypatch, tmp_path, tiny_model):
    monkeypatch.setattr(registry, "REPLICATIONS", registry.REPLICATIONS.with_replication(DemoPaper()))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(bundles, "PACKAGE_BUNDLES_DIR", tmp_path / "no-shipped-model")
    for stem in ("a-first", "demo_paper"):
        save_tiny_bundle(tiny_model, tmp_path / stem)
    assert bundles.default_bundle_name() == "demo_paper"  # not a-first, the first bundle found
    save_tiny_bundle(tiny_model, tmp_path / "neamtiu")
    assert bundles.default_bundle_name() == "neamtiu"  # the suite's demo paper comes first in the registry


def test_the_registry_default_model_comes_before_the_demo_bundles(monkeypatch, tmp_path, tiny_model):
    monkeypatch.setattr(registry, "REPLICATIONS", registry.REPLICATIONS.with_replication(DemoPaper()))
    monkeypatch.setattr(registry.REPLICATIONS, "default_model", registry.DefaultModel("demo_paper", "a-first"))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(bundles, "PACKAGE_BUNDLES_DIR", tmp_path / "no-shipped-model")
    save_tiny_bundle(tiny_model, tmp_path / "demo_paper")
    assert bundles.default_bundle_name() == "demo_paper"  # the default is not there: the demo bundle
    save_tiny_bundle(tiny_model, tmp_path / "a-first")
    assert bundles.default_bundle_name() == "a-first"


def test_predict_finds_the_face_in_a_cfd_photo(models_dir, cfd_photos, capsys):
    assert main(["predict", str(cfd_photos[0])]) == 0  # the default model: the only bundle
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith(str(cfd_photos[0]))]
    assert len(rows) == 1
    assert any(name in rows[0].split() for name in CLASS_NAMES)

    assert main(["predict", str(cfd_photos[0]), "--model", BUNDLE_NAME, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["images"]
    (face,) = result["faces"]
    assert face["label"] in CLASS_NAMES
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_predict_and_demo_take_the_haar_detector(models_dir, cfd_photos, tmp_path, capsys):
    assert main(["predict", str(cfd_photos[0]), "--detector", "haar", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["images"]
    assert len(result["faces"]) == 1
    arguments = ["--output", str(tmp_path / "out"), "--no-display", "--detector", "haar"]
    assert main(["demo", str(cfd_photos[0]), *arguments]) == 0
    assert "1 with faces" in capsys.readouterr().out


def test_an_unknown_detector_is_refused_with_the_choices(models_dir, cfd_photos, tmp_path, capsys):
    assert main(["predict", str(cfd_photos[0]), "--detector", "yolo"]) == 2
    assert "Unknown face detector 'yolo'; choose one of: hog, haar" in capsys.readouterr().err
    assert main(["demo", str(cfd_photos[0]), "--output", str(tmp_path / "out"), "--detector", "yolo"]) == 2


def test_ship_copies_the_seed_chosen_on_validation_without_its_optimizer_state(
    monkeypatch, tmp_path, tiny_model, ckplus_faces
):
    trained = tmp_path / "trained"
    # Seed 0 has the best test accuracy, but the choice may only look at the validation score.
    for seed, accuracy, score in [(0, 0.70, 0.60), (1, 0.64, 0.66), (2, 0.64, 0.66)]:
        save_tiny_bundle(
            tiny_model, trained / f"chen-tiny-seed{seed}", seed=seed, accuracy=accuracy, selection_score=score
        )
    monkeypatch.setenv("FER_MODELS_DIR", str(trained))

    shipped = bundles.ship_bundle("chen-tiny", "chen", target_dir=tmp_path / "package")

    assert shipped == tmp_path / "package" / "chen.keras"
    assert shipped.stat().st_size < (trained / "chen-tiny-seed1.keras").stat().st_size  # no Adam moments
    bundle = load_bundle(shipped)
    assert bundle.source["shipped_from"] == "chen-tiny-seed1"  # best validation score, lowest seed on the tie
    assert bundle.source["chosen_among"] == ["chen-tiny-seed0", "chen-tiny-seed1", "chen-tiny-seed2"]
    assert bundle.source["chosen_by"] == "highest validation accuracy"
    assert bundle.source["accuracy"] == 0.64 and bundle.class_names == list(CLASS_NAMES)
    images, _ = ckplus_faces
    np.testing.assert_array_equal(
        bundle.predict(images), load_bundle(trained / "chen-tiny-seed1.keras").predict(images)
    )


def test_ship_prefers_a_bundle_of_the_exact_name(monkeypatch, tmp_path, tiny_model):
    trained = tmp_path / "trained"
    for stem, accuracy in [("chen-tiny", 0.5), ("chen-tiny-seed0", 0.9)]:
        save_tiny_bundle(tiny_model, trained / stem, accuracy=accuracy)
    monkeypatch.setenv("FER_MODELS_DIR", str(trained))

    bundle = load_bundle(bundles.ship_bundle("chen-tiny", "chen", target_dir=tmp_path / "package"))

    assert bundle.source["shipped_from"] == "chen-tiny"
    assert bundle.source["chosen_by"] == "the bundle of that exact name"


def test_ship_without_a_scored_bundle_says_how_to_make_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    assert main(["ship", "neamtiu-clean_protocol"]) == 2
    error = capsys.readouterr().err
    assert "neamtiu-clean_protocol-seed<N> with a recorded selection score" in error
    assert "make replicate-neamtiu" in error


def test_predict_on_an_image_without_a_face_succeeds_with_no_results(models_dir, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((256, 256, 3), 128, dtype=np.uint8))
    assert main(["predict", str(blank), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["images"]
    assert result["faces"] == [] and result["note"] == "no face found"


def test_an_unreadable_image_is_named(models_dir, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    assert main(["predict", str(broken)]) == 2
    assert str(broken) in capsys.readouterr().err


def test_an_unreadable_video_is_named(models_dir, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    assert main(["demo", str(broken), "--output", str(tmp_path / "out"), "--no-display"]) == 2
    assert str(broken) in capsys.readouterr().err


def test_demo_on_a_folder_writes_annotated_images(models_dir, tmp_path, cfd_photos):
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in cfd_photos[:2]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    cv2.imwrite(str(folder / "z-blank.png"), np.zeros((200, 200), dtype=np.uint8))

    summary = run_demo(folder, load_bundle(BUNDLE_NAME), output_dir=tmp_path / "out", display=False)

    assert (summary.frames, summary.frames_with_faces, summary.faces) == (3, 2, 2)
    assert [path.name for path in summary.annotated_images] == [cfd_photos[0].name, cfd_photos[1].name, "z-blank.png"]
    assert all(cv2.imread(str(path)) is not None for path in summary.annotated_images)
    assert summary.annotated_video is None


def make_video(path: Path, photos: list[Path]) -> int:
    """A 640x480 clip of CFD photos, each shown for a few frames at a different place and size."""
    width, height = VIDEO_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, VIDEO_SIZE)
    assert writer.isOpened()
    frames = 0
    for index, photo in enumerate(photos):
        side = 200 + 20 * (index % 5)
        face = cv2.resize(cv2.imread(str(photo)), (side, side), interpolation=cv2.INTER_AREA)
        for repeat in range(FRAMES_PER_PHOTO):
            canvas = np.full((height, width, 3), 90, dtype=np.uint8)
            left = (width - side) * (index * FRAMES_PER_PHOTO + repeat) // (len(photos) * FRAMES_PER_PHOTO)
            top = (height - side) // 2
            canvas[top : top + side, left : left + side] = face
            writer.write(canvas)
            frames += 1
    writer.release()
    return frames


def count_video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


def test_headless_demo_on_a_640x480_video(models_dir, tmp_path, cfd_photos, monkeypatch):
    """Done when: the demo runs headless on a video, finds the faces and writes video and predictions."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    def no_window(*args, **kwargs):
        raise AssertionError("cv2.imshow called without a display")

    monkeypatch.setattr(cv2, "imshow", no_window)
    video = tmp_path / "faces.mp4"
    frame_count = make_video(video, cfd_photos)
    assert frame_count == VIDEO_PHOTOS * FRAMES_PER_PHOTO == 30

    summary = run_demo(str(video), load_bundle(BUNDLE_NAME), output_dir=tmp_path / "out", display=None)

    print(f"\ndemo on a {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} video: {summary.frames} frames at {summary.fps:.1f} fps")
    assert summary.frames == frame_count
    assert summary.frames_with_faces >= 0.8 * frame_count
    assert summary.annotated_video is not None and count_video_frames(summary.annotated_video) == frame_count
    document = json.loads(summary.predictions_json.read_text())
    assert [record["frame"] for record in document["frames"]] == list(range(frame_count))
    with summary.predictions_csv.open() as file:
        rows = list(csv.DictReader(file))
    assert {int(row["frame"]) for row in rows} == set(range(frame_count))
    assert sum(1 for row in rows if row["label"]) == summary.faces
    assert {row["label"] for row in rows if row["label"]} <= set(CLASS_NAMES)


def test_max_frames_stops_early(models_dir, tmp_path, cfd_photos):
    video = tmp_path / "faces.mp4"
    make_video(video, cfd_photos[:2])
    summary = run_demo(video, load_bundle(BUNDLE_NAME), output_dir=tmp_path / "out", display=False, max_frames=4)
    assert summary.frames == 4
    assert count_video_frames(summary.annotated_video) == 4


@pytest.mark.parametrize("detector_name", ["hog", "haar"])
def test_face_detector_finds_one_face_per_cfd_photo(cfd_photos, detector_name):
    detector = make_face_detector(detector_name)
    for photo in cfd_photos[:3]:
        frame = cv2.imread(str(photo))
        (box,) = detector.detect(frame)
        face = crop_face(frame, box)
        assert face.shape == (box[3], box[2], 3) and face.dtype == np.uint8
        gray_face = crop_face(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), box)
        assert gray_face.shape == (box[3], box[2], 1)
