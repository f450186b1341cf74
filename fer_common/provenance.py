"""Where an output came from: the machine part (code version, packages, machine) for any measurement, and
the replication part (metadata, code, config and data hashes, seeds) that a record adds on top of it."""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import yaml

from . import paths
from .errors import FerError, MetadataError
from .metadata import (
    CPU_KINDS,
    FULL_PROFILE,
    LEGACY_HASHED_SECTIONS,
    METADATA_FILE,
    METADATA_RULE,
    ReplicationMetadata,
    canonical_json,
    code_files,
    files_hash,
    metadata_hash,
)
from .schema import CREATED_FORMAT, Record

# Untracked files here are code a run may import though git does not know it: they make a tree dirty.
CODE_FOLDERS = ("fer_common", "replications", "recipes", "studies")
_LISTED_FILES = 10  # name this many changed files in a message, then count the rest
# Numbers-layer code moved between modules word for word, which keeps the records made before the move current.
CODE_MOVES_FILE = "fer_common/code_moves.yaml"

# Recorded package -> the distributions that provide it (TensorFlow ships as tensorflow or tensorflow-cpu).
PACKAGES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "pandas": ("pandas",),
    "matplotlib": ("matplotlib",),
    "opencv": ("opencv-python-headless", "opencv-python"),
    "pyyaml": ("PyYAML",),
}


def _git(*args: str, repo_root: Path | None = None) -> str | None:
    try:
        done = subprocess.run(
            # --no-optional-locks: `status` must not touch the index of a tree others are working in.
            ["git", "--no-optional-locks", "-C", str(repo_root or paths.REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.rstrip() if done.returncode == 0 else None


def uncommitted_files(repo_root: Path | None = None) -> list[str] | None:
    """Tracked files with uncommitted changes, plus untracked .py files under CODE_FOLDERS; None without git."""
    status = _git("status", "--porcelain", "--untracked-files=no", repo_root=repo_root)
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", *CODE_FOLDERS, repo_root=repo_root)
    if status is None or untracked is None:
        return None
    # Porcelain lines are `XY path` or `XY old -> new`.
    changed = [line[3:].split(" -> ")[-1] for line in status.splitlines() if line.strip()]
    return changed + [name for name in untracked.splitlines() if name.endswith(".py")]


def require_clean_tree(repo_root: Path | None = None) -> None:
    """FerError naming the uncommitted files, when there are any: a full record must be rebuildable from a commit."""
    changed = uncommitted_files(repo_root)
    if changed:
        raise FerError(
            f"A full run needs a clean tree, so that its record names a commit that rebuilds it; "
            f"{describe_files(changed)} in {repo_root or paths.REPO_ROOT} are not committed. Commit them (or "
            "stash them) first, or run another profile (e.g. --profile quick), which may run on a dirty tree."
        )


def describe_files(names: list[str]) -> str:
    """`a, b, c and 4 more` (the first _LISTED_FILES names, then a count)."""
    shown = ", ".join(names[:_LISTED_FILES])
    return shown + (f" and {len(names) - _LISTED_FILES} more" if len(names) > _LISTED_FILES else "")


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name, distributions in PACKAGES.items():
        versions[name] = None
        for distribution in distributions:
            with contextlib.suppress(importlib_metadata.PackageNotFoundError):
                versions[name] = importlib_metadata.version(distribution)
                break
    return versions


def _cpu_description() -> str:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model or platform.machine()} ({os.cpu_count()} logical cores)"


def cpu_kind(cpuinfo: str | None = None) -> str:
    """The CPU kind (one of `metadata.CPU_KINDS`, else "other") by the widest matrix instructions /proc/cpuinfo
    lists: the kinds this project's machines are drawn from differ in them, and so in the kernels that run."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "other"
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    # Each kind is named after the /proc/cpuinfo flag that tells it; CPU_KINDS lists them narrowest first.
    return next((kind for kind in reversed(CPU_KINDS) if kind.replace("-", "_") in flags), "other")


def utc_now() -> str:
    return datetime.now(UTC).strftime(CREATED_FORMAT)


def config_hash(config: Mapping) -> str:
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def machine_provenance(command: str | None = None, repo_root: Path | None = None) -> dict:
    """Where any measurement came from: code version, packages and machine (e.g. the benchmark's)."""
    changed = uncommitted_files(repo_root)
    return {
        "git_commit": _git("rev-parse", "HEAD", repo_root=repo_root) or "unknown",
        "git_dirty": None if changed is None else bool(changed),
        "packages": _package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_description(),
        "cpu_kind": cpu_kind(),
        "created_utc": utc_now(),
        "command": paths.portable(command or " ".join(shlex.quote(a) for a in sys.argv)),
    }


def collect_provenance(
    meta: ReplicationMetadata,
    config: Mapping,
    seeds: list[int],
    dataset_checksum: str | None,
    wall_time_s: float,
    *,
    options: object | None = None,
    command: str | None = None,
    repo_root: Path | None = None,
    profile: str = FULL_PROFILE,
) -> dict:
    """A record's provenance: the machine part plus what tells whether the record is still current.

    options: the run's speed switches (a dataclass such as `train.RuntimeOptions`), kept as `runtime`.
    repo_root: the repository the code and its git state are read from (default: this one).
    """
    files = current_code_files(meta, repo_root)
    return {
        **machine_provenance(command, repo_root),
        "metadata_hash": metadata_hash(meta, profile),
        "metadata_rule": METADATA_RULE,
        "code_hash": files_hash(files),
        "code_files": files,
        "config_hash": config_hash(config),
        "config": copy.deepcopy(dict(config)),
        "dataset_checksum": dataset_checksum,
        "seeds": list(seeds),
        "wall_time_s": float(wall_time_s),
        "runtime": asdict(options) if is_dataclass(options) else options,
    }


def current_code_files(meta: ReplicationMetadata, repo_root: Path | None = None) -> dict[str, str]:
    """{relative path: sha256} of the code the replication runs now (see `metadata.code_files`)."""
    root = meta.folder.parent if meta.folder else None
    return code_files(meta.id, root, repo_root)


def changed_numbers_files(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The numbers-layer files of `current` whose content is in no file of `recorded`.

    Matched by content, not path: a module moved into another folder unchanged still holds the code that made
    the record. Files the record had beyond the numbers layer (records made before the layers) are ignored.
    """
    contents = set(recorded.values())
    return [name for name in sorted(current) if current[name] not in contents]


def definitions(source: bytes) -> set[str] | None:
    """The module's top-level definitions (functions, classes, assignments) as position-free AST dumps; None
    when it does not parse. Imports and the module docstring are left out: each imported numbers-layer module
    is checked on its own."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    return {ast.dump(node) for node in tree.body if isinstance(node, kinds)}


@functools.lru_cache(maxsize=512)
def _file_at(repo_root: Path, commit: str, name: str) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo_root), "show", f"{commit}:{name}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass(frozen=True)
class MovedFrom:
    path: str
    commit: str
    sha256: str


@dataclass(frozen=True)
class CodeMove:
    """A numbers-layer file (at one content) whose every top-level definition came, word for word, from files
    records were made with: those records count it as their own code (see CODE_MOVES_FILE)."""

    file: str
    sha256: str
    sources: tuple[MovedFrom, ...]


def load_code_moves(repo_root: Path | None = None) -> list[CodeMove]:
    path = Path(repo_root or paths.REPO_ROOT) / CODE_MOVES_FILE
    if not path.is_file():
        return []
    try:
        entries = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("moves") or []
        return [
            CodeMove(entry["file"], entry["sha256"], tuple(MovedFrom(**source) for source in entry["from"]))
            for entry in entries
        ]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as error:
        raise MetadataError(
            f"{path}: each entry of `moves` needs file, sha256 and from (path, commit, sha256 each): {error!r}"
        ) from None


def moved_files(
    names: list[str], current: Mapping[str, str], recorded: Mapping[str, str], repo_root: Path | None = None
) -> list[str]:
    """Of `names` (numbers-layer files whose content the record lacks), those a code move accounts for: the
    file is at the moved content, and the record's code had every file it came from."""
    contents = set(recorded.values())
    moves = load_code_moves(repo_root)
    return [
        name
        for name in names
        if any(
            move.file == name and move.sha256 == current[name] and all(s.sha256 in contents for s in move.sources)
            for move in moves
        )
    ]


def numbers_code_changes(
    recorded: Mapping[str, str], current: Mapping[str, str], repo_root: Path | None = None
) -> list[str]:
    """The numbers-layer files of `current` that the code `recorded` (by a record or a job result) did not run:
    matched by content (`changed_numbers_files`), less those a word-for-word code move accounts for
    (`moved_files`). Records and job results are judged by this one rule."""
    changed = changed_numbers_files(recorded, current)
    moved = moved_files(changed, current, recorded, repo_root) if changed else []
    return [name for name in changed if name not in moved]


def code_move_problems(repo_root: Path | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of CODE_MOVES_FILE: an entry whose file has changed since (obsolete: remove it, its
    records are stale anyway), or whose definitions are not all in its sources as git holds them. A source
    commit git does not have here (a shallow clone) cannot be verified: a warning."""
    root = Path(repo_root or paths.REPO_ROOT).resolve()
    problems, warnings = [], []
    for move in load_code_moves(root):
        label = f"{CODE_MOVES_FILE}: {move.file}"
        file = root / move.file
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != move.sha256:
            problems.append(f"{label}: the file is no longer at {move.sha256[:12]}; remove the entry")
            continue
        found: set[str] = set()
        for source in move.sources:
            content = _file_at(root, source.commit, source.path)
            if content is None:
                warnings.append(f"{label}: cannot verify, git here lacks {source.commit[:7]}:{source.path}")
            elif hashlib.sha256(content).hexdigest() != source.sha256:
                problems.append(f"{label}: {source.commit[:7]}:{source.path} is not at {source.sha256[:12]}")
            else:
                found |= definitions(content) or set()
        missing = (definitions(file.read_bytes()) or set()) - found
        if found and missing:
            problems.append(f"{label}: {len(missing)} definition(s) are not in the files it names as its sources")
    return problems, warnings


def _same_metadata(meta: ReplicationMetadata, record: Record, repo_root: Path | None) -> bool:
    """Whether the metadata sections the record's numbers depend on are as the record was made with. A record of
    an older rule (its hash covered `reported` too) is judged by its metadata as git holds it at its commit:
    when that hashes to the record's hash under the old rule, the sections hashed now are compared; without
    that commit here (a shallow clone), by the old rule."""
    provenance, profile = record.provenance, record.profile
    recorded = provenance.metadata_hash
    if provenance.metadata_rule >= METADATA_RULE:
        return recorded == metadata_hash(meta, profile)
    if recorded == metadata_hash(meta, profile, LEGACY_HASHED_SECTIONS):
        return True
    root = Path(repo_root or paths.REPO_ROOT).resolve()
    if meta.folder is None or not provenance.git_commit:
        return False
    try:
        name = (meta.folder / METADATA_FILE).resolve().relative_to(root).as_posix()
    except ValueError:
        return False
    text = _file_at(root, provenance.git_commit, name)
    try:
        then = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return False
    if not isinstance(then, dict) or metadata_hash(then, profile, LEGACY_HASHED_SECTIONS) != recorded:
        return False
    return metadata_hash(then, profile) == metadata_hash(meta, profile)


def stale_reasons(meta: ReplicationMetadata, record: Record, repo_root: Path | None = None) -> list[str]:
    """Why a record no longer matches the current metadata or numbers-layer code (empty list = current), e.g.
    "code changed: fer_common/train.py", "metadata changed", "jobs made by other code (commits a, b)"."""
    provenance = record.provenance
    reasons = []
    if not _same_metadata(meta, record, repo_root):
        reasons.append("metadata changed")
    files = current_code_files(meta, repo_root)
    recorded = provenance.code_files
    if recorded:
        changed = numbers_code_changes(recorded, files, repo_root)
        if changed:
            reasons.append(f"code changed: {describe_files(changed)}")
    elif provenance.code_hash != files_hash(files):
        # Records made before per-file hashes cannot name the files.
        reasons.append("code changed")
    if provenance.mixed_code:
        commits = ", ".join(commit[:7] for commit in provenance.job_commits)
        reasons.append(f"jobs made by other code (commits {commits})")
    return reasons
