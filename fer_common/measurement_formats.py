"""The vocabulary the records of the measurements beyond the replications use (the FER2013 duplicate audit, the
cross-dataset matrix, the speed benchmark): shared by the code that makes them and the report that renders them,
so the report needs neither the training stack nor the images."""

from __future__ import annotations

from collections.abc import Mapping

# The FER2013 duplicate audit.
DATASET = "fer2013"
SPLITS = ("Training", "PublicTest", "PrivateTest")
TRAINING, SCORED_SPLIT = "Training", "PrivateTest"
EXACT, NEAR, ANY = "exact", "near", "any"


def split_pair_name(first: str, second: str) -> str:
    """'Training–PrivateTest' style name, splits in SPLITS order."""
    ordered = sorted((first, second), key=SPLITS.index)
    return "–".join(ordered)


# The cross-dataset matrix.
FIGURE_FILE = "heatmap.png"


def row_label(record: Mapping, model: str) -> str:
    """`model / training set`, with the commit that scored a row carried over from an earlier matrix."""
    entry = record["models"][model]
    carried = entry.get("carried_from")
    scored_at = f" (scored at {str(carried['git_commit'])[:7]})" if carried else ""
    if entry.get("from_job_result"):
        scored_at = f" (scored in its job, {entry['from_job_result']})"
    return f"{model} / {entry['training_dataset']}{scored_at}"


# The speed benchmark: the ways a model is trained (plain Keras fit; the suite's defaults; bf16 where the CPU has
# it; the optimised way as parallel jobs; the defaults without oneDNN).
PLAIN, DEFAULT, OPTIMISED, PARALLEL, NO_ONEDNN = "plain", "default", "optimised", "parallel", "no_onednn"
