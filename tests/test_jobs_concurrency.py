"""Two runs of one configuration at once, sharing FER_CACHE_DIR: the job store's lock makes them take turns."""

import os
import subprocess
import sys
from pathlib import Path

from .helpers import REPO_ROOT

# Each job waits this long after training, so the second run reaches the lock while the first holds it.
PAUSE_S = 5
RUN = """
import logging, sys
from pathlib import Path
from fer_common.runner import run_replication
from tests.sixth_replication.replication import SixthReplication

logging.basicConfig(level=logging.INFO)
results_dir, pause_s = Path(sys.argv[1]), int(sys.argv[2])
run_replication(SixthReplication(), "quick", results_dir=results_dir, config_overrides={"pause_s": pause_s})
"""


def test_two_runs_of_one_configuration_at_once_both_write_their_record(tmp_path):
    environment = {
        **os.environ,
        "FER_CACHE_DIR": str(tmp_path / "cache"),  # shared: one job store folder for both runs
        "FER_MODELS_DIR": str(tmp_path / "models"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, str(tmp_path / f"results-{index}"), str(PAUSE_S)],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in (1, 2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
    for index in (1, 2):
        assert len(list(Path(tmp_path / f"results-{index}" / "sixth_replication").glob("*.json"))) == 1
    waited = [stderr for _, stderr in outputs if "another run of this configuration holds" in stderr]
    assert len(waited) == 1, "one run should have waited for the other's lock"
