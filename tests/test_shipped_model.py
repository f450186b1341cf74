"""The models shipped in the package (fer_common/pretrained, from `make ship-<id>`): the registry's default is
one of them and loads with no trained models around; each is the CNN its source names, scores on PrivateTest
what its metadata says, and `fer-replicate predict` works with the default right after set-up."""

import pytest

from fer_common import bundles
from fer_common.cli import main
from fer_common.data.fer2013 import CLASS_NAMES
from fer_common.registry import REPLICATIONS

from .helpers import requires_dataset, shared_data_dir

# name -> (replication, setting the run publishes, parameters of its architecture)
EXPECTED = {
    "neamtiu": ("neamtiu", "clean_protocol", 2_345_607),
    "fer2013_cnn": ("fer2013_cnn", "single_view", 1_183_255),
}
SHIPPED = [name for name in EXPECTED if (bundles.PACKAGE_BUNDLES_DIR / f"{name}.keras").is_file()]
DEFAULT = REPLICATIONS.default_model.bundle
pytestmark = pytest.mark.skipif(not SHIPPED, reason="no model shipped yet: `make ship-<id>`")


@pytest.fixture
def no_trained_models(monkeypatch, tmp_path):
    """As on a fresh clone: FER_MODELS_DIR holds nothing, so only the package's own models can be found."""
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "empty"))


def test_every_shipped_file_is_known_here():
    on_disk = sorted(path.stem for path in bundles.PACKAGE_BUNDLES_DIR.glob("*.keras"))
    assert on_disk == sorted(SHIPPED), "a shipped bundle this test does not check"


def test_the_registry_default_is_shipped_and_loads_by_default(no_trained_models):
    assert DEFAULT in SHIPPED
    assert bundles.default_bundle_name() == DEFAULT
    assert bundles.load_bundle(DEFAULT).path == (bundles.PACKAGE_BUNDLES_DIR / f"{DEFAULT}.keras").resolve()


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_is_the_cnn_its_source_names(no_trained_models, name):
    replication, setting, parameters = EXPECTED[name]
    bundle = bundles.load_bundle(name)
    assert bundle.class_names == list(CLASS_NAMES)
    assert bundle.preprocessing == bundles.Preprocessing(size=48, channels=1, scale="unit")
    assert bundle.model.count_params() == parameters
    assert bundle.path.stat().st_size < 10_000_000, "a shipped file holds the weights only, at most 10 MB"
    source = bundle.source
    assert source["replication"] == replication and source["setting"] == setting
    # The run publishes its best seed as `<id>-<setting>`, chosen on PublicTest, never on PrivateTest.
    assert source["shipped_from"] == f"{replication}-{setting}"
    assert source["selected_on"] == "PublicTest accuracy"
    assert source["scored_on"].startswith("PrivateTest") and 0 < source["accuracy"] < 1


@requires_dataset("fer2013")
@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_scores_on_private_test_what_its_metadata_says(no_trained_models, name):
    from fer_common.data import load_dataset

    private = load_dataset("fer2013").split("PrivateTest")
    bundle = bundles.load_bundle(name)
    inputs = bundle.preprocessing.apply(private.images)  # what Bundle.predict does, in batches
    predicted = bundle.model.predict(inputs, batch_size=512, verbose=0).argmax(axis=1)
    accuracy = float((predicted == private.labels).mean())
    # Another thread count may add sums in another order and flip a near-tie or two.
    assert accuracy == pytest.approx(bundle.source["accuracy"], abs=2 / len(private.labels))


@requires_dataset("cfd")
def test_predict_on_a_cfd_photo_with_the_default_model(no_trained_models, capsys):
    photo = sorted((shared_data_dir() / "cfd").glob("*.jpg"))[0]
    assert main(["predict", str(photo)]) == 0
    printed = capsys.readouterr().out
    assert f"model: {(bundles.PACKAGE_BUNDLES_DIR / f'{DEFAULT}.keras').resolve()}" in printed
    (row,) = [line for line in printed.splitlines() if line.startswith(str(photo))]
    assert any(name in row.split() for name in CLASS_NAMES)
