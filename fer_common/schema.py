"""The schemas of the files this project reads back, as pydantic models, and their errors in plain words.

`metadata.yaml` (see `fer_common.metadata`) and result records (here) are both validated by pydantic;
`first_problem` turns its first error into `(field, problem)`, e.g. `("rows[0].verdict", "must be one of
...")`, which the loaders prefix with the file so a user fixes the file without reading this code.

Records: schema_version 2 is what the runner writes and the loaders read; every key a committed record holds
is declared, so a reader can rely on its type. The models are frozen: a reader reads attributes, and a derived
value is a `model_copy`. A record's file holds the fields its writer set (`model_dump(exclude_unset=True)`): an
optional field an older record lacks stays absent when it is written again.
"""

from __future__ import annotations

import types
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .bands import ABOUT, BEYOND_PAPER, CLAIMS, DATA_KINDS, KINDS, NOT_RUN, PRIMARY, READINGS
from .verdicts import VERDICTS

SCHEMA_VERSION = 2
CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# No leading dot, no slash: these become folder and file names under results/.
SAFE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.]*(?:-[A-Za-z0-9_.]+)*$"
_INPUT_SHOWN = 80  # characters of a bad value quoted in an error


class FieldError(ValueError):
    """A check across fields, raised inside a model's validator: `where` is relative to that model."""

    def __init__(self, where: tuple[str | int, ...], problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


class StrictModel(BaseModel):
    """No coercion ("3" is not a number, true is not 1) and no unknown fields (a typo is an error)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# --- errors -----------------------------------------------------------------------------------------------


def _location(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _field_type(annotation: Any, part: str | int) -> Any:
    """The annotation one step down `part` from `annotation` (a model, list, dict or optional of those)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _field_type(args[0], part)
    if origin in (Union, types.UnionType):
        for option in args:
            found = _field_type(option, part)
            if found is not None:
                return found
        return None
    if origin is list and args:
        return args[0]
    if origin is dict and args:
        return args[1]
    return None


def _allowed_fields(model: type[BaseModel], parent: tuple[str | int, ...]) -> list[str]:
    annotation: Any = model
    for part in parent:
        annotation = _field_type(annotation, part)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def first_problem(error: ValidationError, model: type[BaseModel]) -> tuple[str, str]:
    """(field, problem) of a validation error's first entry, in the words the loaders print."""
    entry = error.errors()[0]
    where = tuple(entry["loc"])
    cause = (entry.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return _location(where + cause.where) or "(top level)", cause.problem
    if entry["type"] == "missing":
        return _location(where), "is missing"
    if entry["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_fields(model, where[:-1]))
        return _location(where), f"unknown field (allowed: {allowed})"
    shown = repr(entry["input"])
    if len(shown) > _INPUT_SHOWN:
        shown = shown[:_INPUT_SHOWN] + "..."
    problem = entry["msg"].removeprefix("Value error, ")
    return _location(where) or "(top level)", f"{problem[:1].lower()}{problem[1:]}, got {shown}"


# --- records ----------------------------------------------------------------------------------------------

Number = float | None
Name = Annotated[str, Field(pattern=SAFE_NAME_PATTERN)]
Text = Annotated[str, Field(min_length=1)]


class Summary(StrictModel):
    """A metric over the seeds of a setting (`metrics.summarize`)."""

    mean: Number
    sd: Number
    values: list[Number]
    n: int


class ClassScores(StrictModel):
    """One class of a classification report; recall and f1 are None for a class absent from the test set."""

    precision: float
    recall: Number
    f1: Number
    support: int


class ClassificationReport(StrictModel):
    """`metrics.classification_report` of one seed's scored set."""

    n: int
    class_names: list[str]
    accuracy: float
    accuracy_ci: Annotated[list[float], Field(min_length=2, max_length=2)]
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]
    confusion_matrix_normalized: list[list[float]]
    roc_auc: dict[str, Number]  # None for a class the test set has no (or only) images of
    loss: float
    ece: float
    predicted: dict[str, int]  # how many images each class was predicted for


class SeedEntry(StrictModel):
    """One seed of one setting, as `execution.evaluate_outcome` writes it."""

    metrics: dict[str, Number]
    report: ClassificationReport | None
    history: dict[str, list[Any]]
    scored_set: str
    denominators: dict[str, int]
    notes: list[str]
    details: dict[str, Any]  # each replication's own
    wall_time_s: float | None = None
    # The scored set's labels and predicted classes, one character per image (`per_image`): paired tests.
    predictions: dict[str, str] | None = None


class Setting(StrictModel):
    seeds: dict[str, SeedEntry]
    summary: dict[str, Summary]


class BandEntry(StrictModel):
    """`bands.Band.to_dict()`."""

    low: float
    high: float
    half_width: float
    terms: dict[str, Number]
    binding: str


class Row(StrictModel):
    # Fields in the order records hold them (`rows.build_rows`), so a record is written again as it was.
    metric: Text
    setting: Text
    kind: Literal[KINDS] = "proportion"
    mean: Number
    sd: Number
    values: list[Number]
    ci: Annotated[list[float], Field(min_length=2, max_length=2)] | None
    # What a model that learnt nothing scores on our test set (accuracy and recall rows; rows derive them).
    chance: Number = None
    majority: Number = None
    reported: Number
    # Paper rows since the threshold claims; older records have neither (an `about`, primary row).
    claim: Literal[CLAIMS] = ABOUT
    reading: Literal[READINGS] = PRIMARY
    n_test: int | None
    where: str | None
    band: BandEntry | None
    verdict: Literal[VERDICTS]
    position: Literal["inside", "below", "above"] | None = None
    note: str
    # The verdict rule's reading (`verdicts.judge`): the interval, the claim's margin and why.
    interval: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    margin: Number = None
    judgement: str | None = None

    @model_validator(mode="after")
    def _paper_row_has_band(self) -> Row:
        if self.verdict not in (BEYOND_PAPER, NOT_RUN) and self.band is None:
            raise FieldError(("band",), f"a paper row needs its band (verdict {self.verdict!r})")
        return self


class JobOrigin(StrictModel):
    """One job result a record was assembled from (`runner._job_origin`): its file, where and how long it ran."""

    setting: str
    seed: int
    file: str
    git_commit: str
    cpu: str
    cpu_kind: str
    policy: str
    threads: int
    wall_time_s: float
    finished_utc: str


class Provenance(StrictModel):
    """Where a record came from (`provenance.collect_provenance`, completed by the runner). Fields in the order
    records hold them; those with a default are absent from records made before they were added."""

    git_commit: str
    git_dirty: bool | None
    packages: dict[str, str | None]
    python: str
    platform: str
    cpu: str
    cpu_kind: str | None = None
    created_utc: str
    command: str
    metadata_hash: str
    metadata_rule: int = 1  # absent: the first rule, whose hash covered `reported` too
    code_hash: str
    code_files: dict[str, str] | None = None  # {path: sha256}; absent before per-file hashes
    config_hash: str
    config: dict[str, Any]
    dataset_checksum: str | None
    seeds: list[int]
    wall_time_s: float
    runtime: dict[str, Any] | None = None  # the speed switches, as the run's version named them
    data_verified: bool | None = None  # None: no SHA256SUMS to check the data against
    data_differences: list[str] = []
    # None: a record made before run notes, which `runner._same_assembly` tells from a run without any.
    run_notes: list[str] | None = None
    executor: dict[str, Any] | None = None  # where parallel jobs ran: kind and workers
    job_commits: list[str] = []
    mixed_code: bool = False  # some jobs ran other numbers-layer code than the record's commit
    jobs: list[JobOrigin] = []
    jobs_wall_time_s: float | None = None  # the jobs' own times summed, those of other sessions included

    @field_validator("created_utc")
    @classmethod
    def _is_utc_time(cls, value: str) -> str:
        try:
            datetime.strptime(value, CREATED_FORMAT)
        except ValueError:
            raise ValueError("must look like 2024-05-01T12:00:00Z") from None
        return value


class Record(StrictModel):
    """A result record, schema version 2 (see `fer_common.records`). `path`: the file it was loaded from (set
    by `records.load_record`), never written."""

    schema_version: Literal[2]
    replication: Name
    profile: Name
    data: Literal[DATA_KINDS]
    settings: dict[str, Setting]
    rows: list[Row]
    missing: str | None
    provenance: Provenance
    path: Path | None = Field(default=None, exclude=True)

    def seeds_of(self, setting: str) -> dict[str, SeedEntry]:
        """{seed: entry} of one setting; empty for a setting the record did not run."""
        ran = self.settings.get(setting)
        return ran.seeds if ran else {}

    @model_validator(mode="after")
    def _missing_says_what(self) -> Record:
        if self.data == "missing" and self.missing is None:
            raise FieldError(("missing",), "must say what is missing when data is 'missing'")
        return self
