"""The face detectors and the detector benchmark's synthetic video."""

import builtins

import cv2
import numpy as np
import pytest

from fer_common import faces
from fer_common.data.images import list_image_files
from fer_common.detector_bench import count_hits, iou, read_video, score, synthetic_frames, write_video
from fer_common.errors import FerError
from fer_common.faces import DEFAULT_DETECTOR, make_face_detector

from .helpers import requires_dataset, shared_data_dir

CFD_PHOTOS = 6


@pytest.fixture(scope="module")
def cfd_photos():
    return list_image_files(shared_data_dir() / "cfd")[:CFD_PHOTOS]


@requires_dataset("cfd")
def test_the_default_detector_finds_the_face_in_cfd_photos(cfd_photos):
    detector = make_face_detector()
    assert detector.name == DEFAULT_DETECTOR == "hog"
    for photo in cfd_photos:
        frame = cv2.imread(str(photo))
        (box,) = detector.detect(frame)
        assert iou(box, (60, 64, 136, 136)) >= 0.5  # the face's place in every CFD photo
        (gray_box,) = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[..., None])
        assert gray_box == box


def test_a_blank_frame_has_no_face():
    for name in faces.DETECTORS:
        assert make_face_detector(name).detect(np.full((480, 640, 3), 128, dtype=np.uint8)) == []


def test_an_unknown_detector_names_the_choices():
    with pytest.raises(FerError, match="Unknown face detector 'yunet'; choose one of: hog, haar"):
        make_face_detector("yunet")


def test_a_missing_dlib_says_which_package_to_install(monkeypatch):
    real_import = builtins.__import__

    def import_without_dlib(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", import_without_dlib)
    with pytest.raises(FerError, match="dlib-bin") as raised:
        make_face_detector("hog")
    assert raised.value.exit_code == 2


def test_hog_upsamples_only_where_small_faces_are_wanted():
    assert faces._upsampling_for(38) == 1  # 640x480: faces from 8% of 480 px
    assert faces._upsampling_for(86) == 0  # 1920x1080


@requires_dataset("cfd")
def test_the_synthetic_video_is_the_same_for_the_same_seed(cfd_photos):
    first, again = synthetic_frames(cfd_photos, seed=3, frames=3), synthetic_frames(cfd_photos, seed=3, frames=3)
    other = synthetic_frames(cfd_photos, seed=4, frames=3)
    assert [frame.faces for frame in first] == [frame.faces for frame in again]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert [frame.faces for frame in first] != [frame.faces for frame in other]
    for frame in first:
        assert frame.image.shape == (480, 640, 3) and 1 <= len(frame.faces) <= 4
        assert all(40 <= width <= 200 and width == height for _, _, width, height in frame.faces)


@requires_dataset("cfd")
def test_the_synthetic_video_round_trips_through_a_video_file(cfd_photos, tmp_path):
    frames = synthetic_frames(cfd_photos, seed=0, frames=4)
    write_video(tmp_path / "video.avi", frames)
    decoded = read_video(tmp_path / "video.avi", frames)
    assert [frame.faces for frame in decoded] == [frame.faces for frame in frames]
    # Motion JPEG is lossy, but only slightly.
    assert np.abs(decoded[0].image.astype(int) - frames[0].image.astype(int)).mean() < 4
    result = score("haar", decoded)
    assert result.images == 4 and result.hits + result.false_positives >= 1


def test_a_hit_needs_an_overlap_of_half_and_counts_once():
    true_faces = [(0, 0, 100, 100), (300, 300, 50, 50)]
    assert count_hits([(10, 10, 100, 100), (0, 0, 100, 100)], true_faces) == 1
    assert count_hits([(60, 60, 100, 100)], true_faces) == 0
    assert count_hits([(0, 0, 100, 100), (300, 300, 50, 50)], true_faces) == 2
