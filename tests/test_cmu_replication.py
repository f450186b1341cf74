"""CMU replication end to end on small AffectNet-shaped sets built from real faces, and its `not run` row."""

import shutil

import numpy as np
import pytest

from fer_common.bundles import load_bundle
from fer_common.demo import predict_images
from fer_common.records import load_record
from fer_common.registry import REPLICATIONS
from fer_common.runner import run_replication
from replications.cmu.replication import class_balance

from .helpers import requires_dataset, shared_data_dir
from .test_affectnet import make_list_file_edition

SHARED_DATA = shared_data_dir()  # read before the tests point FER_DATA_DIR elsewhere
CKPLUS_TO_AFFECTNET = {
    "anger": "anger",
    "contempt": "contempt",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
}


def make_folder_edition(root, per_class: int = 8) -> None:
    """One folder per AffectNet class: CK+48 faces, and CFD neutral photos for `neutral`."""
    for ck_folder, affectnet_class in CKPLUS_TO_AFFECTNET.items():
        (root / affectnet_class).mkdir(parents=True)
        for photo in sorted((SHARED_DATA / "ckplus48" / ck_folder).glob("*.png"))[:per_class]:
            shutil.copy(photo, root / affectnet_class / photo.name)
    (root / "neutral").mkdir()
    for photo in sorted((SHARED_DATA / "cfd").glob("CFD-*-N.jpg"))[:per_class]:
        shutil.copy(photo, root / "neutral" / photo.name)


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FER_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path


@requires_dataset("cfd")
@requires_dataset("ckplus48")
@pytest.mark.parametrize("edition", ["list-file", "folders"])
def test_fixture_run_trains_both_models_and_records_every_row(isolated_dirs, edition):
    root = isolated_dirs / "data" / "affectnet"
    root.mkdir(parents=True)
    make_list_file_edition(root) if edition == "list-file" else make_folder_edition(root)
    record, path = run_replication(REPLICATIONS.get("cmu"), "fixture")
    assert load_record(path).data == "real"
    assert set(record.settings) == {"baseline", "resnet18"}
    for setting in ("baseline", "resnet18"):
        seed = record.settings[setting].seeds["0"]
        assert 0.0 <= seed.metrics["accuracy"] <= 1.0 and 0.0 <= seed.metrics["test_accuracy"] <= 1.0
        assert seed.history["loss"] and seed.history["val_loss"]
    resnet_rows = [row for row in record.rows if row.setting == "resnet18"]
    # No weights in FER_WEIGHTS_DIR: ResNet18 trained from scratch, and every row of it says so.
    assert all("from scratch" in row.note for row in resnet_rows)
    assert (path.with_suffix("") / "baseline-confusion.png").stat().st_size > 0
    # The paper's claims about its data, counted on the seed's training split.
    [split] = [seed.details["sizes"]["train"] for seed in record.settings["baseline"].seeds.values()]
    claims = {row.metric: row for row in record.rows if row.setting == "baseline"}
    assert claims["share/happy_and_neutral"].reported == 0.5 and 0 < claims["share/happy_and_neutral"].mean < 1
    assert split > 0
    # Static2Live: each setting's best model is a bundle the demo and `predict` select by name.
    photo = sorted((SHARED_DATA / "cfd").glob("CFD-*-N.jpg"))[0]
    for setting in ("baseline", "resnet18"):
        bundle = load_bundle(f"cmu-{setting}")
        assert bundle.class_names == record.settings[setting].seeds["0"].report.class_names
        [result] = predict_images([photo], bundle)
        assert len(result["faces"]) == 1 and result["faces"][0]["label"] in bundle.class_names


def test_the_data_claims_count_happy_per_contempt_and_the_share_of_happy_and_neutral():
    names = ["neutral", "happy", "sad", "contempt"]
    labels = np.array([0] * 3 + [1] * 6 + [2] * 1 + [3] * 2)
    assert class_balance(labels, names) == {"share/happy_and_neutral": 9 / 12, "happy_per_contempt": 3.0}
    assert "happy_per_contempt" not in class_balance(labels[labels != 3], names)  # no contempt: no ratio


def test_without_affectnet_the_run_records_not_run_with_instructions(isolated_dirs, caplog):
    with caplog.at_level("WARNING", logger="fer_common"):
        record, path = run_replication(REPLICATIONS.get("cmu"))
    assert record.data == "missing" and path.exists()
    assert {row.verdict for row in record.rows} == {"not run"}
    assert all("mohammadmahoor.com/affectnet" in row.note for row in record.rows)
    assert "resnet18_imagenet_torchvision.npz" in caplog.text
