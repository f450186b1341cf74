"""`make data`: fetch what the Kaggle API can fetch; say plainly what it cannot."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fer_common.paths import data_dir

KAGGLE_DATASETS = {
    "fer2013": "msambare/fer2013",
    "ckplus48": "shawon10/ckplus",
}
NOT_ON_KAGGLE = {
    "cfd": "Chicago Face Database: request it at https://www.chicagofaces.org/ and unpack the photos into "
    "$FER_DATA_DIR/cfd/ (file names CFD-<Race><Sex>-<target>-<photo>-<expr>.jpg).",
    "affectnet": "AffectNet: request it from its authors at http://mohammadmahoor.com/affectnet/ and unpack it into "
    "$FER_DATA_DIR/affectnet/ (training.csv + validation.csv + Manually_Annotated_Images/, or one folder per class).",
}

log = logging.getLogger(__name__)


def kaggle_credentials_present() -> bool:
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    has_env = bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
    return has_env or (config_dir / "kaggle.json").exists() or bool(os.environ.get("KAGGLE_API_TOKEN"))


def download_all() -> int:
    root = data_dir()
    log.info("FER_DATA_DIR = %s", root)
    status = 0
    try:
        import kaggle  # noqa: F401  (imports authenticate; fails without credentials)

        kaggle_ready = kaggle_credentials_present()
    except Exception:  # the package raises on import when credentials are missing
        kaggle_ready = False
    for name, slug in KAGGLE_DATASETS.items():
        target = root / name
        if target.exists() and any(target.iterdir()):
            log.info("%s: already present in %s", name, target)
            continue
        if not kaggle_ready:
            log.warning(
                f"{name}: cannot download without the Kaggle API. Run `pip install kaggle`, put your API token in "
                f"~/.kaggle/kaggle.json (kaggle.com > Settings > API), then `make data` again; or download "
                f"https://www.kaggle.com/datasets/{slug} by hand and unpack it into {target}."
            )
            status = 1
            continue
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
        log.info("%s: downloading kaggle dataset %s into %s ...", name, slug, target)
        api.dataset_download_files(slug, path=str(target), unzip=True, quiet=False)
    for name, text in NOT_ON_KAGGLE.items():
        present = (root / name).exists()
        log.info("%s: %s - %s", name, "present" if present else "not downloadable here", text)
    return status
