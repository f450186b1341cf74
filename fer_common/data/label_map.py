"""A label map: a CSV with the header columns `file,label` that names each image and its class.

For data a user supplies as files anywhere under one folder instead of one folder per class. File paths are
relative to the CSV's folder; labels are class names in any case; column names may differ in case and spaces.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from fer_common.errors import DatasetError

SHOWN_MISSING = 10  # missing files named in the error; the rest are counted


def _normalised_row(row: dict) -> dict[str, str]:
    """Column names lower-cased and stripped, values stripped ("" where a row is short)."""
    return {key.strip().lower(): (text or "").strip() for key, text in row.items() if key}


def _read_rows(label_map: Path) -> list[dict[str, str]]:
    with open(label_map, newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: spreadsheets write a BOM
        reader = csv.DictReader(handle)
        columns = [column.strip().lower() for column in reader.fieldnames or []]
        if "file" not in columns or "label" not in columns:
            raise DatasetError(f"Label map {label_map} needs the header columns file,label; has {columns}.")
        return [_normalised_row(row) for row in reader]


def read_label_map(label_map: Path, class_names: Sequence[str]) -> list[tuple[Path, int]]:
    """(file, index of its label in `class_names`) per row, in file order; every file must exist, once.

    DatasetError names the line of an unknown label or a repeated file, and every file that is missing.
    """
    label_map = Path(label_map)
    known = [name.lower() for name in class_names]
    labelled, missing, seen = [], [], set()
    for line, row in enumerate(_read_rows(label_map), start=2):  # line 1 is the header
        label = row["label"].lower()
        if label not in known:
            raise DatasetError(
                f"Label map {label_map} line {line}: label {row['label']!r} is not one of {', '.join(class_names)}."
            )
        path = (label_map.parent / row["file"]).resolve()
        if not row["file"] or not path.is_file():
            missing.append(f"line {line} {row['file']!r}")
        elif path in seen:
            raise DatasetError(f"Label map {label_map} line {line}: {row['file']!r} is listed twice.")
        seen.add(path)
        labelled.append((path, known.index(label)))
    if missing:
        shown = "; ".join(missing[:SHOWN_MISSING])
        if len(missing) > SHOWN_MISSING:
            shown += f"; and {len(missing) - SHOWN_MISSING} more"
        raise DatasetError(
            f"Label map {label_map} names {len(missing)} file(s) not found in {label_map.parent}: {shown}."
        )
    return labelled
