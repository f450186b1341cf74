"""A replication's metadata (`replications/<id>/metadata.yaml`), validated on load.

Everything a replication claims lives in that file: the paper, its dataset, the figures it reports, the rows
we add, our assumptions and, once a full run has been reviewed, what we expect to get again. Errors name
the file and the field (`reported[1].n_test`), so a typo is fixed without reading this code.

The replications root is `FER_REPLICATIONS_DIR` if set, else `replications/` in the repository; every
function also takes it as `root=`.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .bands import ABOUT, ALTERNATIVE, CLAIMS, DATA_KINDS, DEFAULT_FLOOR, KINDS, NOT_RUN, PRIMARY, READINGS
from .errors import MetadataError
from .paths import REPO_ROOT
from .schema import FieldError, StrictModel, first_problem
from .verdicts import DEFAULT_MARGINS, VERDICTS

METADATA_FILE = "metadata.yaml"
FULL_PROFILE = "full"
# Built-in metrics that are not proportions (no sampling term, not shown as percentages).
VALUE_METRICS = frozenset({"loss"})


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must be a non-empty string")
    return text


def _unique_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be unique")
    return seeds


Text = Annotated[str, AfterValidator(_not_blank)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]
Seeds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_unique_seeds)]


def replications_dir() -> Path:
    """Folder holding one sub-folder per replication (`FER_REPLICATIONS_DIR`, default `replications/`)."""
    return Path(os.environ.get("FER_REPLICATIONS_DIR", REPO_ROOT / "replications")).expanduser().resolve()


def recipes_dir(root: Path | None = None) -> Path:
    """Our own model recipes (not papers) live beside the replications folder: `<root>/../recipes`."""
    return (Path(root) if root else replications_dir()).parent / "recipes"


class DatasetInfo(StrictModel):
    name: Text
    data: Literal[DATA_KINDS]
    description: str = ""


def _with_default_kind(entry: Any) -> Any:
    """A row's kind when the metadata gives none: the loss is a value, everything else a proportion."""
    if isinstance(entry, dict) and "kind" not in entry:
        return {**entry, "kind": "value" if entry.get("metric") in VALUE_METRICS else "proportion"}
    return entry


class ReportedFigure(StrictModel):
    """A figure the paper reports; it becomes a band row."""

    metric: Text
    setting: Text
    value: FiniteNumber
    where: Text
    # Required for proportions (the band's sampling term): the number of test cases the figure is a
    # fraction of, i.e. the test size for accuracy, the class's test count for its recall.
    n_test: Annotated[int, Field(ge=1)] | None = None
    kind: Literal[KINDS] = "proportion"
    floor: Annotated[FiniteNumber, Field(ge=0)] = DEFAULT_FLOOR
    note: str = ""
    # "about" the value (two-sided band) or a threshold: "at_least" ("above 90%"), "at_most" (see bands).
    claim: Literal[CLAIMS] = ABOUT
    # "alternative": another reading of an ambiguous sentence; its note names the primary row it replaces.
    reading: Literal[READINGS] = PRIMARY
    # Which way is better, for the report's words; None: higher for a proportion, no preference for a value.
    better: Literal["higher", "lower"] | None = None
    # What a run must have for the claim to be tested (e.g. ImageNet weights for a transfer-learning claim), and
    # the seed note that says a run lacked it: such a run's row is "not run", saying what it needs.
    needs: Text | None = None
    untested_when: Text | None = None
    # Rows that check parts of one statement of the paper share a name here: they count as one claim.
    statement: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _kind_and_its_fields(cls, entry: Any) -> Any:
        entry = _with_default_kind(entry)
        if not isinstance(entry, dict):
            return entry
        if entry["kind"] == "proportion" and "n_test" not in entry:
            raise FieldError(("n_test",), "is missing (a proportion's band needs the paper's test size)")
        if entry["kind"] == "value" and "floor" not in entry:
            raise FieldError(("floor",), "is missing (a kind: value row takes its band floor from metadata)")
        return entry

    @model_validator(mode="after")
    def _proportion_in_unit_interval(self) -> ReportedFigure:
        if self.kind == "proportion" and not 0.0 <= self.value <= 1.0:
            raise FieldError(("value",), f"a proportion must lie in [0, 1] (83.25% is 0.8325), got {self.value}")
        if self.claim != ABOUT and self.kind != "proportion":
            raise FieldError(("claim",), f"{self.claim} is supported for kind: proportion only, got {self.kind}")
        if self.reading == ALTERNATIVE and not self.note.strip():
            raise FieldError(("note",), "an alternative reading must say in its note which primary row it reads")
        if (self.needs is None) != (self.untested_when is None):
            raise FieldError(
                ("needs",), "needs and untested_when go together: what a run needs, and the note of one that lacks it"
            )
        return self


class BeyondPaperRow(StrictModel):
    """A row we add that the paper does not report (no band)."""

    metric: Text
    setting: Text
    note: str = ""
    kind: Literal[KINDS] = "proportion"
    # The report's section for the row (e.g. "leakage audit"); "timing" rows go to a speed section.
    group: Text = "extra metrics"

    @model_validator(mode="before")
    @classmethod
    def _default_kind(cls, entry: Any) -> Any:
        return _with_default_kind(entry)


class Assumption(StrictModel):
    choice: Text
    why: Text


class ExpectedResult(StrictModel):
    """What a reviewed full run gave; regression checks compare new runs against it."""

    metric: Text
    setting: Text
    verdict: Literal[VERDICTS]
    mean: FiniteNumber | None
    sd: Annotated[FiniteNumber, Field(ge=0)] = 0.0
    floor: Annotated[FiniteNumber, Field(ge=0)] = DEFAULT_FLOOR

    @model_validator(mode="after")
    def _mean_unless_not_run(self) -> ExpectedResult:
        if self.mean is None and self.verdict != NOT_RUN:
            raise FieldError(("mean",), f"may be null only with verdict {NOT_RUN!r}")
        return self


# The CPU kinds this project's machines are drawn from (provenance's `cpu_kind` names them the same way).
CPU_KINDS = ("avx2", "avx512-bf16", "amx-bf16")
# What a regression band's values are: one proportion of n test cases, a difference of two proportions (of n1
# and n2 cases), or another value (e.g. a loss), whose margin is the entry's own floor.
REGRESSION_KINDS = ("proportion", "difference", "value")


class Margin(StrictModel):
    """The equivalence margin of one claim (see `verdicts`): how far from the paper's value still counts as the
    same result, and why; claims without one take `verdicts.DEFAULT_MARGINS`."""

    metric: Text
    setting: Text
    claim: Literal[CLAIMS] = ABOUT
    margin: Annotated[float, Field(gt=0)]
    why: Text


class Comparison(StrictModel):
    """Two settings scored on the same images of each seed: `metric` (a row's metric in `setting`) is the
    accuracy of `setting` minus that of `against`, per seed, with a paired test (McNemar) over the images.
    images: `scored` (the set each seed's record entry was scored on) or the name of a details entry holding
    another set's labels and predictions ({"true": ..., "predicted": ...}, see `per_image`)."""

    metric: Text
    setting: Text
    against: Text
    images: Text = "scored"


class Order(StrictModel):
    """A claim that metrics rank in tiers ("anger, surprise and disgust the highest, contempt and happiness
    moderate, sadness and fear lowest"): `metric` is, per seed of `setting`, the share of pairs from different
    tiers (`tiers`, highest first, each a list of metrics) that our values put in the paper's order, a tie
    counting half: 1 where every pair agrees (a rank agreement, as Kendall's tau counts pairs)."""

    metric: Text
    setting: Text
    tiers: list[list[Text]] = Field(min_length=2)


class HistoryGap(StrictModel):
    """A claim about two training curves ("the training and validation lines follow very similar paths"):
    `metric` is, per seed of `setting`, `minuend` minus `subtrahend` at the last epoch of its training history
    (e.g. accuracy minus val_accuracy)."""

    metric: Text
    setting: Text
    minuend: Text
    subtrahend: Text


class RegressionRun(StrictModel):
    """A recorded run of a short profile (e.g. `ci`) that regression bands are made of: the record under
    results/<id>/, the CPU kind it ran on, and the seeds it holds (its values' order in each band)."""

    profile: Text
    record: Text
    cpu: Literal[CPU_KINDS]
    seeds: Seeds


class RegressionBand(StrictModel):
    """One metric of a short profile: its value in every seed of the profile's `regression_runs`, in their
    order (seeds on every CPU kind recorded). A new run of the profile must land in the band these values
    give by the rule of `fer_common.regression`."""

    profile: Text
    metric: Text
    setting: Text
    kind: Literal[REGRESSION_KINDS] = "proportion"
    n: list[Annotated[int, Field(gt=0)]] = []
    floor: Annotated[FiniteNumber, Field(ge=0)] | None = None
    values: Annotated[list[FiniteNumber], Field(min_length=2)]  # one seed has no spread to make a band of

    @model_validator(mode="after")
    def _sizes_fit_the_kind(self) -> RegressionBand:
        wanted = {"proportion": 1, "difference": 2, "value": 0}[self.kind]
        if len(self.n) != wanted:
            raise FieldError(("n",), f"a {self.kind} needs {wanted} test-set size(s), got {self.n}")
        if self.kind == "value" and self.floor is None:
            raise FieldError(("floor",), "a value (not a proportion) needs its margin as `floor`, in its units")
        return self


class Hypothesis(StrictModel):
    """A possible cause of a paper's number that does not reproduce: what the replication gives when it is
    run another way. `profile` (a profile of this file, or `full`) is run like any other; its latest record's
    `measure` (default: the claim's own metric) in the claim's setting is read against the claim's band."""

    metric: Text  # the reported row it tries to explain
    setting: Text
    hypothesis: Text  # in words, with the paper's sentence that allows it
    profile: Text
    measure: Text | None = None
    # Read every claim in this setting of the profile's record instead of its own (e.g. a leakage audit's
    # subject-disjoint split): the variant matrix only (report.variants).
    reads_setting: Text | None = None


class Profile(StrictModel):
    """Named overrides of the defaults (e.g. `quick` for CI); None/empty = keep the default."""

    seeds: Seeds | None = None
    config: dict[str, Any] = {}
    settings: list[str] | None = None  # a subset of the settings to run (e.g. CI runs only the paper's)

    @field_validator("config", mode="before")
    @classmethod
    def _empty_config(cls, value: Any) -> Any:
        return {} if value is None else value


class TriedStep(StrictModel):
    """One step tried on the way to a recipe's config, for its model card: what changed, what it bought (on the
    selection set, or in the run's own figures) and at what cost, whether the config keeps it, and the file
    under `results/` that measured it."""

    step: Text
    bought: Text
    kept: bool
    evidence: Text


class ReplicationMetadata(StrictModel):
    """A replication's `metadata.yaml`, validated; `path` is the file it was loaded from."""

    id: Text
    title: Text
    authors: Annotated[list[Text], Field(min_length=1)]
    year: Annotated[int, Field(ge=1900)]
    paper_file: Text
    dataset: DatasetInfo
    protocol: Text
    seeds: Seeds
    config: dict[str, Any]
    settings: Annotated[dict[str, Text], Field(min_length=1)]
    profiles: dict[str, Profile] = {}
    reported: list[ReportedFigure] = []
    beyond_paper: list[BeyondPaperRow] = []
    assumptions: list[Assumption] = []
    expected: list[ExpectedResult] = []
    comparisons: list[Comparison] = []
    orders: list[Order] = []
    history_gaps: list[HistoryGap] = []
    margins: list[Margin] = []
    regression_runs: list[RegressionRun] = []
    regression: list[RegressionBand] = []
    hypotheses: list[Hypothesis] = []
    tried: list[TriedStep] = []
    missing: Text | None = None
    # Set by `load_metadata` after validation: the file, and its parsed content for `metadata_hash`.
    _path: Path | None = PrivateAttr(default=None)
    _raw: dict = PrivateAttr(default_factory=dict)

    @field_validator(
        "profiles",
        "reported",
        "beyond_paper",
        "assumptions",
        "expected",
        "comparisons",
        "orders",
        "history_gaps",
        "margins",
        "regression_runs",
        "regression",
        "hypotheses",
        "tried",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return {} if info.field_name == "profiles" else []
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ReplicationMetadata:
        _check_profiles(self)
        rows = _check_rows(self)
        for i, entry in enumerate(self.expected):
            _check_setting(self, entry.setting, ("expected", i, "setting"))
            if (entry.metric, entry.setting) not in rows:
                raise FieldError(
                    ("expected", i),
                    f"no reported or beyond_paper row for metric {entry.metric!r} in setting {entry.setting!r}",
                )
        for i, comparison in enumerate(self.comparisons):
            _check_setting(self, comparison.setting, ("comparisons", i, "setting"))
            _check_setting(self, comparison.against, ("comparisons", i, "against"))
            if (comparison.metric, comparison.setting) not in rows:
                raise FieldError(
                    ("comparisons", i), f"no row for metric {comparison.metric!r} in {comparison.setting!r}"
                )
        for section in ("orders", "history_gaps"):
            for i, derived in enumerate(getattr(self, section)):
                _check_setting(self, derived.setting, (section, i, "setting"))
                if (derived.metric, derived.setting) not in rows:
                    raise FieldError((section, i), f"no row for metric {derived.metric!r} in {derived.setting!r}")
        _check_regression(self)
        _check_hypotheses(self)
        if self.missing is None and self.dataset.data == "missing":
            raise FieldError(("missing",), "is required when dataset.data is 'missing': say what a user must supply")
        return self

    def margin(self, metric: str, setting: str, claim: str, kind: str, floor: float) -> float:
        """The claim's equivalence margin: its `margins:` entry, else the default of its kind (a value's floor)."""
        for entry in self.margins:
            if (entry.metric, entry.setting, entry.claim) == (metric, setting, claim):
                return entry.margin
        return DEFAULT_MARGINS.get(kind, floor)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def raw(self) -> dict:
        """The parsed file, for hashing."""
        return self._raw

    @property
    def folder(self) -> Path | None:
        return None if self._path is None else self._path.parent

    def resolve(self, profile: str = FULL_PROFILE) -> tuple[dict, list[int]]:
        """(config, seeds) for a profile: its overrides merged over the defaults; "full" = the defaults."""
        if profile == FULL_PROFILE:
            return copy.deepcopy(self.config), list(self.seeds)
        if profile not in self.profiles:
            known = ", ".join([FULL_PROFILE, *self.profiles])
            raise MetadataError(f"{self.id}: unknown profile {profile!r}; known profiles: {known}")
        chosen = self.profiles[profile]
        seeds = list(chosen.seeds) if chosen.seeds else list(self.seeds)
        return _deep_merge(self.config, chosen.config), seeds

    def settings_for(self, profile: str = FULL_PROFILE) -> list[str]:
        """The settings a profile runs: all of them unless the profile names a subset."""
        chosen = self.profiles.get(profile)
        return list(chosen.settings) if chosen and chosen.settings else list(self.settings)

    def regression_seeds(self, profile: str) -> list[tuple[RegressionRun, int]]:
        """(run, seed) of every value of a regression band of `profile`, in the values' order."""
        return [(run, seed) for run in self.regression_runs if run.profile == profile for seed in run.seeds]

    def expected_for(self, metric: str, setting: str) -> ExpectedResult | None:
        for entry in self.expected:
            if entry.metric == metric and entry.setting == setting:
                return entry
        return None


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _unknown_override(base: dict, override: dict, prefix: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The first key of a profile's config override that the default config lacks (a typo, most likely)."""
    for key, value in override.items():
        if key not in base:
            return (*prefix, key)
        if isinstance(value, dict) and isinstance(base[key], dict):
            found = _unknown_override(base[key], value, (*prefix, key))
            if found:
                return found
    return None


def _check_setting(meta: ReplicationMetadata, setting: str, where: tuple[str | int, ...]) -> None:
    if setting not in meta.settings:
        raise FieldError(where, f"must be one of {', '.join(meta.settings)}; got {setting!r}")


def _check_profiles(meta: ReplicationMetadata) -> None:
    for name, profile in meta.profiles.items():
        if name == FULL_PROFILE:
            raise FieldError(("profiles", name), "'full' is reserved for the defaults and cannot be overridden")
        typo = _unknown_override(meta.config, profile.config)
        if typo:
            raise FieldError(("profiles", name, "config", *typo), "overrides a key that `config` does not have")
        for setting in profile.settings or []:
            _check_setting(meta, setting, ("profiles", name, "settings"))


def _row_identity(row: ReportedFigure | BeyondPaperRow) -> tuple[str, ...]:
    """What two rows may not share: a paper's figure may be claimed both `about` a value and as a threshold
    (or read two ways), and two sentences may give one quantity different values (Hong: train accuracy reaches
    100% after epoch 35, and from about epoch 45), so a reported row is told apart by claim, reading and value."""
    if isinstance(row, ReportedFigure):
        return (row.metric, row.setting, row.claim, row.reading, str(row.value))
    return (row.metric, row.setting)


def _check_regression(meta: ReplicationMetadata) -> None:
    """Each regression run and band names a profile this file defines; each band a setting that profile runs,
    listed once, with one value per seed of that profile's runs."""
    known = ", ".join(meta.profiles) or "none"
    for i, run in enumerate(meta.regression_runs):
        if run.profile not in meta.profiles:
            raise FieldError(
                ("regression_runs", i, "profile"), f"must be a profile of this file ({known}); got {run.profile!r}"
            )
    seen: set[tuple[str, str, str]] = set()
    for i, entry in enumerate(meta.regression):
        if entry.profile not in meta.profiles:
            raise FieldError(
                ("regression", i, "profile"), f"must be a profile of this file ({known}); got {entry.profile!r}"
            )
        if entry.setting not in meta.settings_for(entry.profile):
            raise FieldError(
                ("regression", i, "setting"),
                f"profile {entry.profile!r} runs {', '.join(meta.settings_for(entry.profile))}; got {entry.setting!r}",
            )
        key = (entry.profile, entry.metric, entry.setting)
        if key in seen:
            raise FieldError(
                ("regression", i), f"{entry.metric} [{entry.setting}] of profile {entry.profile!r} is already listed"
            )
        seen.add(key)
        seeds = sum(len(run.seeds) for run in meta.regression_runs if run.profile == entry.profile)
        if len(entry.values) != seeds:
            raise FieldError(
                ("regression", i, "values"),
                f"{len(entry.values)} values, but the regression_runs of profile {entry.profile!r} hold {seeds} seeds",
            )


def _check_hypotheses(meta: ReplicationMetadata) -> None:
    """Each hypothesis explains a reported row and names a profile that runs the row's setting."""
    claims = {(figure.metric, figure.setting) for figure in meta.reported}
    for i, entry in enumerate(meta.hypotheses):
        if (entry.metric, entry.setting) not in claims:
            raise FieldError(("hypotheses", i), f"no reported row {entry.metric!r} in setting {entry.setting!r}")
        if entry.profile != FULL_PROFILE and entry.profile not in meta.profiles:
            known = ", ".join([FULL_PROFILE, *meta.profiles])
            raise FieldError(("hypotheses", i, "profile"), f"must be one of {known}; got {entry.profile!r}")
        if entry.setting not in meta.settings_for(entry.profile):
            raise FieldError(("hypotheses", i, "setting"), f"profile {entry.profile!r} does not run {entry.setting!r}")


def _check_rows(meta: ReplicationMetadata) -> set[tuple[str, str]]:
    """Every row names a declared setting, no row is listed twice and no beyond_paper row repeats a reported
    metric; returns the (metric, setting) pairs."""
    seen: set[tuple[str, ...]] = set()
    pairs: set[tuple[str, str]] = set()
    for section in ("reported", "beyond_paper"):
        for i, row in enumerate(getattr(meta, section)):
            _check_setting(meta, row.setting, (section, i, "setting"))
            pair = (row.metric, row.setting)
            if _row_identity(row) in seen or (section == "beyond_paper" and pair in pairs):
                raise FieldError(
                    (section, i), f"a row for metric {row.metric!r} in setting {row.setting!r} is already listed"
                )
            seen.add(_row_identity(row))
            pairs.add(pair)
    return pairs


def _parse(raw: Any, path: Path) -> ReplicationMetadata:
    try:
        meta = ReplicationMetadata.model_validate(raw)
    except ValidationError as error:
        where, problem = first_problem(error, ReplicationMetadata)
        raise MetadataError(f"{path}: field '{where}': {problem}") from None
    if path.name == METADATA_FILE and path.parent.name != meta.id:
        raise MetadataError(f"{path}: field 'id': must equal its folder name {path.parent.name!r}, got {meta.id!r}")
    meta._path = path
    meta._raw = raw
    return meta


def metadata_path(replication_id_or_path: str | Path, root: Path | None = None) -> Path:
    """The metadata file of a replication id, a replication folder or a YAML file path."""
    target = replication_id_or_path
    looks_like_path = (
        isinstance(target, Path) or "/" in target or os.sep in target or target.endswith((".yaml", ".yml"))
    )
    if looks_like_path:
        path = Path(target).expanduser()
        return (path / METADATA_FILE if path.is_dir() else path).resolve()
    return (Path(root) if root else replications_dir()) / target / METADATA_FILE


def load_metadata(replication_id_or_path: str | Path, root: Path | None = None) -> ReplicationMetadata:
    """Load and validate a replication's metadata; MetadataError names the file and the bad field."""
    path = metadata_path(replication_id_or_path, root)
    if not path.is_file():
        known = ", ".join(list_replications(root)) or "none"
        raise MetadataError(f"{path}: no such metadata file (known replications: {known})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise MetadataError(f"{path}: not valid YAML: {error}") from error
    return _parse(raw, path)


def list_replications(root: Path | None = None) -> list[str]:
    """Ids of the folders under the replications root that hold a metadata.yaml, sorted."""
    base = Path(root) if root else replications_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / METADATA_FILE).is_file())


def canonical_json(value: Any) -> str:
    """Key-sorted compact JSON (dates and other non-JSON scalars as strings), for stable hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# What a record's numbers depend on. The paper's figures and claims (`reported`) change no measurement: rows and
# verdicts are derived from a record's per-seed values when the report is built, so adding a claim or a reading
# leaves every record current (a claim on a metric the record lacks reads "no value"). `expected` records a
# reviewed run's outcome, so filling it in must not make that very run's record stale; titles, notes,
# assumptions and margins change no number either.
HASHED_SECTIONS = ("dataset", "protocol", "seeds", "config", "profiles", "settings")
# Records state the rule their metadata hash follows; those made before rule 2 (no `metadata_rule`) hashed
# `reported` too, and are judged against their metadata as git holds it at their commit (provenance).
METADATA_RULE = 2
LEGACY_HASHED_SECTIONS = (*HASHED_SECTIONS, "reported")
# The numbers layer: the modules whose code can change a measured value (data, augmentation, models, training
# and its resume, metrics, bias metrics) and every replication's and recipe's own package. A record's code hash
# covers the part of it its replication imports, so editing the runs layer (executors, jobs, provenance, record
# format) or the report (verdicts, pages) leaves every record current. `execution` runs one job and scores its
# predictions; `bands` is here while Boyce's test draws count against a paper band.
NUMBERS_LAYER = (
    "fer_common.augment",
    "fer_common.bands",
    "fer_common.contract",
    "fer_common.data",
    "fer_common.execution",
    "fer_common.faces",
    "fer_common.fairness",
    "fer_common.metrics",
    "fer_common.resume",
    "fer_common.resumable_callbacks",
    "fer_common.train",
    "fer_common.weights",
    "recipes",
    "replications",
)
# Every job runs through `execution`: the hash starts from it and the replication's folder.
EXECUTION_MODULE = "fer_common.execution"


def in_numbers_layer(module: str) -> bool:
    """Whether `module` (a dotted name) belongs to the numbers layer."""
    return any(module == name or module.startswith(f"{name}.") for name in NUMBERS_LAYER)


def metadata_hash(
    meta: ReplicationMetadata | Mapping[str, Any],
    profile: str = FULL_PROFILE,
    sections: tuple[str, ...] = HASHED_SECTIONS,
) -> str:
    """sha256 of the metadata sections a record of `profile` depends on (HASHED_SECTIONS), as parsed: comments
    and formatting do not change it. Of `profiles`, only that profile's entry counts: adding or changing a CI
    profile leaves full records current. `meta`: loaded metadata or its parsed YAML."""
    raw = meta.raw if isinstance(meta, ReplicationMetadata) else meta
    content = {section: raw.get(section) for section in sections}
    if "profiles" in sections:
        content["profiles"] = (raw.get("profiles") or {}).get(profile)
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def code_files(replication_id: str, root: Path | None = None, repo_root: Path | None = None) -> dict[str, str]:
    """{relative path: sha256} of the numbers-layer code a replication runs: its folder's .py files, `execution`,
    and every numbers-layer module of the repository they import, transitively (imports inside functions
    too), found by parsing the imports. Imports of other layers are not followed (see NUMBERS_LAYER).

    root: the replications folder; repo_root: the repository whose `fer_common` (and other packages) the
    imports resolve to (default: the one that holds the replications folder, then this one). Paths are
    relative to the folder that holds the package.
    """
    folder = (Path(root) if root else replications_dir()) / replication_id
    if not folder.is_dir():
        raise MetadataError(f"{folder}: no such replication folder")
    # Imports resolve in the given repository, else in the replication's own (a copy of this one has its
    # own fer_common), else in the installed one.
    own_repository = folder.resolve().parent.parent
    candidates = [Path(repo_root).resolve()] if repo_root else []
    search_roots = list(dict.fromkeys([*candidates, own_repository, REPO_ROOT.resolve()]))
    own = {file.resolve() for file in folder.rglob("*.py") if "__pycache__" not in file.parts}
    pending = list(own)
    pending.extend(_module_files(EXECUTION_MODULE, search_roots))
    found: dict[Path, Path] = {}  # file -> the search root it lies under
    while pending:
        file = pending.pop()
        if file in found:
            continue
        base = next((base for base in search_roots if file.is_relative_to(base)), file.parent)
        module = _module_name(file, base)
        if file not in own and not in_numbers_layer(module):
            continue
        found[file] = base
        pending.extend(_package_files(module, base))
        for name in _imported_modules(file, module):
            pending.extend(_module_files(name, search_roots))
    return {file.relative_to(base).as_posix(): _file_sha256(file) for file, base in sorted(found.items())}


def files_hash(files: dict[str, str]) -> str:
    """One sha256 over {relative path: sha256} (a record's `code_hash` from its `code_files`)."""
    return hashlib.sha256("".join(f"{name}\0{files[name]}\n" for name in sorted(files)).encode()).hexdigest()


def code_hash(replication_id: str, root: Path | None = None, repo_root: Path | None = None) -> str:
    """sha256 over `code_files`: the numbers-layer code the replication runs."""
    return files_hash(code_files(replication_id, root, repo_root))


def _file_sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _module_name(file: Path, base: Path) -> str:
    parts = file.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_files(module: str, base: Path) -> list[Path]:
    """The `__init__.py` of every package above `module`: importing it runs them."""
    parts = module.split(".")
    candidates = (base.joinpath(*parts[:end], "__init__.py") for end in range(1, len(parts)))
    return [file for file in candidates if file.is_file()]


def _imported_modules(file: Path, module: str) -> set[str]:
    """Every module name `file` may import: `import a.b` gives a.b; `from a import b` gives a and a.b (b may be
    a module); relative imports are resolved against `module`'s package."""
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except SyntaxError as error:
        raise MetadataError(f"{file}: cannot hash code that does not parse: {error}") from error
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join(filter(None, [*anchor, node.module or ""]))
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
    return {name for name in names if name}


def _module_files(name: str, search_roots: list[Path]) -> list[Path]:
    """The file of module `name` under the first search root that has it, with its packages' `__init__.py`."""
    parts = name.split(".")
    for base in search_roots:
        for file in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if file.is_file():
                return [file.resolve(), *_package_files(name, base)]
    return []
