"""A replication's metadata (`replications/<id>/metadata.yaml`), validated on load.

Everything a replication claims lives in that file: the paper, its dataset, the figures it reports, the rows
we add, our assumptions and, once a full run has been reviewed, what we expect to get again. Errors name
the file and the field (`reported[1].n_test`), so a typo is fixed without reading this code.

The replications root is `FER_REPLICATIONS_DIR` if set, else `replications/` in the repository; every
function also takes it as `root=`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .bands import DATA_KINDS, DEFAULT_FLOOR, KINDS, NOT_RUN, VERDICTS
from .errors import MetadataError
from .paths import REPO_ROOT

METADATA_FILE = "metadata.yaml"
FULL_PROFILE = "full"
# Built-in metrics that are not proportions (no sampling term, not shown as percentages).
VALUE_METRICS = frozenset({"loss"})

_TOP_LEVEL = {
    "id": True,
    "title": True,
    "authors": True,
    "year": True,
    "paper_file": True,
    "dataset": True,
    "protocol": True,
    "seeds": True,
    "config": True,
    "settings": True,
    "profiles": False,
    "reported": False,
    "beyond_paper": False,
    "assumptions": False,
    "expected": False,
    "missing": False,
}  # field -> required


def replications_dir() -> Path:
    """Folder holding one sub-folder per replication (`FER_REPLICATIONS_DIR`, default `replications/`)."""
    return Path(os.environ.get("FER_REPLICATIONS_DIR", REPO_ROOT / "replications")).expanduser().resolve()


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    data: str  # real | proxy | missing
    description: str = ""


@dataclass(frozen=True)
class ReportedFigure:
    """A figure the paper reports; it becomes a band row."""

    metric: str
    setting: str
    value: float
    where: str
    # Required for proportions (the band's sampling term): the number of test cases the figure is a
    # fraction of, i.e. the test size for accuracy, the class's test count for its recall.
    n_test: int | None = None
    kind: str = "proportion"  # proportion | value
    floor: float = DEFAULT_FLOOR
    note: str = ""


@dataclass(frozen=True)
class BeyondPaperRow:
    """A row we add that the paper does not report (no band)."""

    metric: str
    setting: str
    note: str = ""
    kind: str = "proportion"


@dataclass(frozen=True)
class Assumption:
    choice: str
    why: str


@dataclass(frozen=True)
class ExpectedResult:
    """What a reviewed full run gave; regression checks compare new runs against it."""

    metric: str
    setting: str
    verdict: str
    mean: float | None
    sd: float = 0.0
    floor: float = DEFAULT_FLOOR


@dataclass(frozen=True)
class Profile:
    """Named overrides of the defaults (e.g. `quick` for CI); None/empty = keep the default."""

    seeds: list[int] | None = None
    config: dict = field(default_factory=dict)
    settings: list[str] | None = None  # a subset of the settings to run (e.g. CI runs only the paper's)


@dataclass
class ReplicationMetadata:
    id: str
    title: str
    authors: list[str]
    year: int
    paper_file: str
    dataset: DatasetInfo
    protocol: str
    seeds: list[int]
    config: dict
    settings: dict[str, str]
    profiles: dict[str, Profile] = field(default_factory=dict)
    reported: list[ReportedFigure] = field(default_factory=list)
    beyond_paper: list[BeyondPaperRow] = field(default_factory=list)
    assumptions: list[Assumption] = field(default_factory=list)
    expected: list[ExpectedResult] = field(default_factory=list)
    missing: str | None = None
    path: Path | None = None  # the file it was loaded from
    raw: dict = field(default_factory=dict, repr=False)  # the parsed file, for hashing

    @property
    def folder(self) -> Path | None:
        return None if self.path is None else self.path.parent

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


def default_kind(metric: object) -> str:
    """A row's kind when the metadata gives none: the loss is a value, everything else a proportion."""
    return "value" if metric in VALUE_METRICS else "proportion"


class _Checker:
    """Reads typed fields out of the parsed YAML, raising MetadataError that names file and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> MetadataError:
        return MetadataError(f"{self.path}: field '{where}': {problem}")

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__}")
        bad = [key for key in value if not isinstance(key, str)]
        if bad:
            raise self.fail(where, f"keys must be strings, got {bad!r}")
        return value

    def known_keys(self, value: dict, where: str, required: set[str], optional: set[str]) -> None:
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(f"{where}.{missing[0]}" if where else missing[0], "is missing")
        unknown = sorted(set(value) - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            raise self.fail(f"{where}.{unknown[0]}" if where else unknown[0], f"unknown field (allowed: {allowed})")

    def text(self, value: Any, where: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.fail(where, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, value: Any, where: str, *, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(where, f"must be a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be >= {minimum}, got {value!r}")
        return float(value)

    def integer(self, value: Any, where: str, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be >= {minimum}, got {value!r}")
        return value

    def choice(self, value: Any, where: str, options: tuple[str, ...]) -> str:
        if value not in options:
            raise self.fail(where, f"must be one of {', '.join(options)}; got {value!r}")
        return value

    def items(self, value: Any, where: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, got {type(value).__name__}")
        return value

    def seeds(self, value: Any, where: str) -> list[int]:
        seeds = [self.integer(s, f"{where}[{i}]", minimum=0) for i, s in enumerate(self.items(value, where))]
        if not seeds:
            raise self.fail(where, "must list at least one seed")
        if len(set(seeds)) != len(seeds):
            raise self.fail(where, f"seeds must be unique, got {seeds}")
        return seeds


def _unknown_override(base: dict, override: dict, prefix: str = "") -> str | None:
    """The first key of a profile's config override that the default config lacks (a typo, most likely)."""
    for key, value in override.items():
        if key not in base:
            return prefix + key
        if isinstance(value, dict) and isinstance(base[key], dict):
            found = _unknown_override(base[key], value, f"{prefix}{key}.")
            if found:
                return found
    return None


def _parse(raw: Any, path: Path) -> ReplicationMetadata:
    c = _Checker(path)
    raw = c.mapping(raw, "(top level)")
    c.known_keys(raw, "", {k for k, req in _TOP_LEVEL.items() if req}, {k for k, req in _TOP_LEVEL.items() if not req})

    replication_id = c.text(raw["id"], "id")
    if path.name == METADATA_FILE and path.parent.name != replication_id:
        raise c.fail("id", f"must equal its folder name {path.parent.name!r}, got {replication_id!r}")
    authors = [c.text(a, f"authors[{i}]") for i, a in enumerate(c.items(raw["authors"], "authors"))]
    if not authors:
        raise c.fail("authors", "must list at least one author")

    d = c.mapping(raw["dataset"], "dataset")
    c.known_keys(d, "dataset", {"name", "data"}, {"description"})
    dataset = DatasetInfo(
        name=c.text(d["name"], "dataset.name"),
        data=c.choice(d["data"], "dataset.data", DATA_KINDS),
        description=c.text(d.get("description", ""), "dataset.description", empty=True),
    )

    settings = c.mapping(raw["settings"], "settings")
    if not settings:
        raise c.fail("settings", "must name at least one setting")
    settings = {name: c.text(text, f"settings.{name}") for name, text in settings.items()}
    config = c.mapping(raw["config"], "config")
    seeds = c.seeds(raw["seeds"], "seeds")

    profiles = {}
    for name, entry in c.mapping(raw.get("profiles") or {}, "profiles").items():
        where = f"profiles.{name}"
        if name == FULL_PROFILE:
            raise c.fail(where, "'full' is reserved for the defaults and cannot be overridden")
        entry = c.mapping(entry or {}, where)
        c.known_keys(entry, where, set(), {"seeds", "config", "settings"})
        override = c.mapping(entry.get("config") or {}, f"{where}.config")
        typo = _unknown_override(config, override)
        if typo:
            raise c.fail(f"{where}.config.{typo}", "overrides a key that `config` does not have")
        profile_seeds = c.seeds(entry["seeds"], f"{where}.seeds") if "seeds" in entry else None
        profile_settings = (
            [c.choice(item, f"{where}.settings", tuple(settings)) for item in c.items(entry["settings"], where)]
            if "settings" in entry
            else None
        )
        profiles[name] = Profile(seeds=profile_seeds, config=override, settings=profile_settings)

    def setting_of(value: Any, where: str) -> str:
        return c.choice(value, where, tuple(settings))

    rows_seen: set[tuple[str, str]] = set()

    def unique(metric: str, setting: str, where: str) -> None:
        if (metric, setting) in rows_seen:
            raise c.fail(where, f"a row for metric {metric!r} in setting {setting!r} is already listed")
        rows_seen.add((metric, setting))

    reported = []
    for i, entry in enumerate(c.items(raw.get("reported"), "reported")):
        where = f"reported[{i}]"
        entry = c.mapping(entry, where)
        c.known_keys(entry, where, {"metric", "setting", "value", "where"}, {"n_test", "kind", "floor", "note"})
        kind = c.choice(entry.get("kind", default_kind(entry["metric"])), f"{where}.kind", KINDS)
        value = c.number(entry["value"], f"{where}.value")
        if kind == "proportion":
            if not 0.0 <= value <= 1.0:
                raise c.fail(f"{where}.value", f"a proportion must lie in [0, 1] (83.25% is 0.8325), got {value}")
            if "n_test" not in entry:
                raise c.fail(f"{where}.n_test", "is missing (a proportion's band needs the paper's test size)")
        elif "floor" not in entry:
            raise c.fail(f"{where}.floor", "is missing (a kind: value row takes its band floor from metadata)")
        figure = ReportedFigure(
            metric=c.text(entry["metric"], f"{where}.metric"),
            setting=setting_of(entry["setting"], f"{where}.setting"),
            value=value,
            where=c.text(entry["where"], f"{where}.where"),
            n_test=c.integer(entry["n_test"], f"{where}.n_test", minimum=1) if "n_test" in entry else None,
            kind=kind,
            floor=c.number(entry.get("floor", DEFAULT_FLOOR), f"{where}.floor", minimum=0),
            note=c.text(entry.get("note", ""), f"{where}.note", empty=True),
        )
        unique(figure.metric, figure.setting, where)
        reported.append(figure)

    beyond = []
    for i, entry in enumerate(c.items(raw.get("beyond_paper"), "beyond_paper")):
        where = f"beyond_paper[{i}]"
        entry = c.mapping(entry, where)
        c.known_keys(entry, where, {"metric", "setting"}, {"note", "kind"})
        row = BeyondPaperRow(
            metric=c.text(entry["metric"], f"{where}.metric"),
            setting=setting_of(entry["setting"], f"{where}.setting"),
            note=c.text(entry.get("note", ""), f"{where}.note", empty=True),
            kind=c.choice(entry.get("kind", default_kind(entry["metric"])), f"{where}.kind", KINDS),
        )
        unique(row.metric, row.setting, where)
        beyond.append(row)

    assumptions = []
    for i, entry in enumerate(c.items(raw.get("assumptions"), "assumptions")):
        where = f"assumptions[{i}]"
        entry = c.mapping(entry, where)
        c.known_keys(entry, where, {"choice", "why"}, set())
        assumptions.append(Assumption(c.text(entry["choice"], f"{where}.choice"), c.text(entry["why"], f"{where}.why")))

    expected = []
    for i, entry in enumerate(c.items(raw.get("expected"), "expected")):
        where = f"expected[{i}]"
        entry = c.mapping(entry, where)
        c.known_keys(entry, where, {"metric", "setting", "verdict", "mean"}, {"sd", "floor"})
        metric = c.text(entry["metric"], f"{where}.metric")
        setting = setting_of(entry["setting"], f"{where}.setting")
        if (metric, setting) not in rows_seen:
            raise c.fail(where, f"no reported or beyond_paper row for metric {metric!r} in setting {setting!r}")
        verdict = c.choice(entry["verdict"], f"{where}.verdict", VERDICTS)
        if entry["mean"] is None and verdict != NOT_RUN:
            raise c.fail(f"{where}.mean", f"may be null only with verdict {NOT_RUN!r}")
        expected.append(
            ExpectedResult(
                metric=metric,
                setting=setting,
                verdict=verdict,
                mean=None if entry["mean"] is None else c.number(entry["mean"], f"{where}.mean"),
                sd=c.number(entry.get("sd", 0.0), f"{where}.sd", minimum=0),
                floor=c.number(entry.get("floor", DEFAULT_FLOOR), f"{where}.floor", minimum=0),
            )
        )

    missing = raw.get("missing")
    if missing is not None:
        missing = c.text(missing, "missing")
    elif dataset.data == "missing":
        raise c.fail("missing", "is required when dataset.data is 'missing': say what a user must supply")

    return ReplicationMetadata(
        id=replication_id,
        title=c.text(raw["title"], "title"),
        authors=authors,
        year=c.integer(raw["year"], "year", minimum=1900),
        paper_file=c.text(raw["paper_file"], "paper_file"),
        dataset=dataset,
        protocol=c.text(raw["protocol"], "protocol"),
        seeds=seeds,
        config=config,
        settings=settings,
        profiles=profiles,
        reported=reported,
        beyond_paper=beyond,
        assumptions=assumptions,
        expected=expected,
        missing=missing,
        path=path,
        raw=raw,
    )


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


def metadata_hash(meta: ReplicationMetadata) -> str:
    """sha256 of the metadata's parsed content: comments and formatting do not change it.

    `expected` is left out (hashed as empty): it records a reviewed run's outcome, so filling it in
    must not make that very run's record stale.
    """
    content = {**meta.raw, "expected": []}
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def code_hash(replication_id: str, root: Path | None = None) -> str:
    """sha256 over the replication folder's .py files (relative path and content, in path order)."""
    folder = (Path(root) if root else replications_dir()) / replication_id
    if not folder.is_dir():
        raise MetadataError(f"{folder}: no such replication folder")
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    for file in files:
        digest.update(file.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()
