"""Records bound to their code and data, on a temporary git copy of the library with the sixth replication.

The copy holds the tracked `fer_common/` files and `tests/sixth_replication/` as `replications/sixth_replication/`;
the runner and the checks read its files and its git state (`repo_root`), so editing the copy is editing "the
repository" without touching this one.
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
from pathlib import Path

import pytest
import yaml

from fer_common.checks import check_records
from fer_common.data import load_dataset
from fer_common.errors import DatasetError, FerError, MetadataError
from fer_common.metadata import LEGACY_HASHED_SECTIONS, NUMBERS_LAYER, code_files, load_metadata, metadata_hash
from fer_common.provenance import CODE_MOVES_FILE, code_move_problems, stale_reasons
from fer_common.records import record_content, write_record
from fer_common.rows import record_rows
from fer_common.runner import MODIFIED_DATA_NOTE, run_replication
from fer_common.schema import Provenance
from fer_common.tables import write_tables

from .fixtures_data import make_ckplus, write_sha256sums
from .helpers import REPO_ROOT, with_provenance
from .helpers import git as _git
from .sixth_replication.replication import SixthReplication

TRAIN = "fer_common/train.py"
SPLITS = "fer_common/data/splits.py"


def _copied_sixth(repository: Path) -> type[SixthReplication]:
    """The sixth replication as the copy holds it: its metadata (and so its code) are the copy's."""

    class CopiedSixth(SixthReplication):
        metadata_file = repository / "replications" / "sixth_replication" / "metadata.yaml"

    return CopiedSixth


def _run(replication, repository: Path, tmp_path: Path, profile: str = "full", **arguments):
    # The copy's own results/ (a full record there must be clean); never this repository's.
    results = repository / "results" if repository != REPO_ROOT else tmp_path / "results"
    return run_replication(
        replication,
        profile,
        results_dir=results,
        jobs_root=tmp_path / "jobs",
        make_plots=False,
        repo_root=repository,
        **arguments,
    )


def _report_and_strict_check(repository: Path, tmp_path: Path):
    """Regenerate the report as `make all-tables` would, then `check --strict`."""
    write_tables(repository / "results", root=repository / "replications")
    return check_records(repository / "results", root=repository / "replications", repo_root=repository, strict=True)


def _edit_one_line(path: Path) -> str:
    original = path.read_text()
    line = "from __future__ import annotations"
    path.write_text(original.replace(line, f"{line}  # edited", 1))
    assert path.read_text() != original
    return original


def _edit_code(path: Path) -> str:
    """A change to what the module defines (a comment or an import alone changes no definition)."""
    original = path.read_text()
    path.write_text(original + "\nEDITED = True\n")
    return original


def test_editing_train_py_fails_the_strict_check_naming_the_record_and_the_file(repository, tmp_path):
    record, path = _run(_copied_sixth(repository)(), repository, tmp_path)
    provenance = record.provenance
    assert provenance.git_dirty is False and provenance.git_commit == _git(repository, "rev-parse", "HEAD")
    assert {TRAIN, "replications/sixth_replication/replication.py"} <= set(provenance.code_files)
    assert provenance.job_commits == [provenance.git_commit] and provenance.mixed_code is False
    assert _report_and_strict_check(repository, tmp_path) == ([], [])

    original = _edit_code(repository / TRAIN)
    (problem,) = _report_and_strict_check(repository, tmp_path).problems
    assert problem.startswith(f"sixth_replication ({path.name}): stale (code changed: {TRAIN})"), problem
    page = (repository / "results" / "sixth_replication" / "README.md").read_text()
    assert "Stale" in page and TRAIN in page, "the report marks the record stale and names the file"

    (repository / TRAIN).write_text(original)
    assert _report_and_strict_check(repository, tmp_path) == ([], [])


def test_a_full_run_refuses_a_dirty_tree_and_other_profiles_record_it(repository, tmp_path):
    replication = _copied_sixth(repository)()
    _edit_one_line(repository / TRAIN)
    with pytest.raises(FerError, match=rf"clean tree.*{TRAIN} in .* are not committed. Commit them"):
        _run(replication, repository, tmp_path)
    record, _ = _run(replication, repository, tmp_path, "quick")
    assert record.provenance.git_dirty is True


def test_an_untracked_module_makes_the_tree_dirty(repository, tmp_path):
    (repository / "fer_common" / "new_module.py").write_text("VALUE = 1\n")
    (repository / "notes.txt").write_text("untracked, but not code")
    with pytest.raises(FerError, match="fer_common/new_module.py in"):
        _run(_copied_sixth(repository)(), repository, tmp_path)


def test_a_record_of_jobs_from_code_edited_during_the_run_says_so(repository, tmp_path, caplog):
    class EditedDuringTheRun(_copied_sixth(repository)):
        def run_setting(self, *arguments):
            outcome = super().run_setting(*arguments)
            _edit_code(repository / TRAIN)  # as if someone edited the library while the jobs ran
            return outcome

    with caplog.at_level(logging.WARNING):
        record, _ = _run(EditedDuringTheRun(), repository, tmp_path, "quick")
    provenance = record.provenance
    assert provenance.mixed_code is True and provenance.job_commits == [provenance.git_commit]
    assert "the jobs ran at other code than the tree now holds" in caplog.text
    meta = load_metadata(EditedDuringTheRun.metadata_file)
    assert stale_reasons(meta, record, repository) == [
        f"code changed: {TRAIN}",
        f"jobs made by other code (commits {provenance.git_commit[:7]})",
    ]


@pytest.mark.parametrize(
    "module", ["fer_common/provenance.py", "fer_common/pages.py", "fer_common/metadata.py", "fer_common/runner.py"]
)
def test_editing_the_runs_layer_or_the_report_leaves_the_record_current(repository, tmp_path, module):
    _run(_copied_sixth(repository)(), repository, tmp_path)
    _edit_one_line(repository / module)
    _git(repository, "commit", "-qam", f"edit {module}")
    assert _report_and_strict_check(repository, tmp_path) == ([], [])


def test_numbers_layer_files_are_matched_by_content_so_a_moved_module_keeps_its_records(repository, tmp_path):
    record, _ = _run(_copied_sixth(repository)(), repository, tmp_path)
    meta = load_metadata(_copied_sixth(repository).metadata_file)
    files = dict(record.provenance.code_files)
    # As if the record had been made before train.py moved to where it lies now.
    files["fer_common/old_place/train.py"] = files.pop(TRAIN)
    assert stale_reasons(meta, with_provenance(record, code_files=files), repository) == []
    files["fer_common/old_place/train.py"] = "0" * 64  # another content under the old name: it is not train.py's
    assert stale_reasons(meta, with_provenance(record, code_files=files), repository) == [f"code changed: {TRAIN}"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_code_moves(repository: Path, sources: dict[str, tuple[str, str]], *files: str) -> None:
    """An entry per file, each naming every source (path -> (commit, sha256)) as where its code came from."""
    entries = [
        {
            "file": name,
            "sha256": _sha256(repository / name),
            "from": [{"path": path, "commit": commit, "sha256": sha} for path, (commit, sha) in sources.items()],
        }
        for name in files
    ]
    (repository / CODE_MOVES_FILE).write_text(yaml.safe_dump({"moves": entries}))


def test_code_moved_between_numbers_modules_word_for_word_keeps_the_record_current(repository, tmp_path):
    """Definitions moved out of one numbers-layer module into another unchanged (as the job's scoring moved
    out of the runner into `execution`) are the code that made the record, once fer_common/code_moves.yaml
    says so; the check verifies the entry against git, and an entry whose file changed since is refused."""
    record, _ = _run(_copied_sixth(repository)(), repository, tmp_path)
    commit = record.provenance.git_commit
    metrics, splits = repository / "fer_common" / "metrics.py", repository / "fer_common" / "data" / "splits.py"
    sources = {name: (commit, _sha256(repository / name)) for name in ("fer_common/metrics.py", SPLITS)}
    source = metrics.read_text()
    start = source.index("\ndef wilson_interval(")
    end = source.index("\ndef ", start + 1)
    metrics.write_text(source[:start] + source[end:] + "\nfrom fer_common.data.splits import wilson_interval  # noqa\n")
    splits.write_text(splits.read_text() + "\nimport math  # noqa: E402\n" + source[start:end])
    _git(repository, "commit", "-qam", "move wilson_interval")
    (problem,) = _report_and_strict_check(repository, tmp_path).problems
    assert "stale (code changed: fer_common/data/splits.py, fer_common/metrics.py)" in problem, problem

    _write_code_moves(repository, sources, "fer_common/metrics.py", SPLITS)
    _git(repository, "add", CODE_MOVES_FILE)
    _git(repository, "commit", "-qm", "say so")
    assert _report_and_strict_check(repository, tmp_path) == ([], [])

    splits.write_text(splits.read_text().replace("z: float = 1.96", "z: float = 2.0", 1))
    _git(repository, "commit", "-qam", "edit it")
    problems = _report_and_strict_check(repository, tmp_path).problems
    assert any(f"{SPLITS}: the file is no longer at" in p and "remove the entry" in p for p in problems), problems
    assert any(f"stale (code changed: {SPLITS})" in p for p in problems), problems


def test_a_code_move_whose_sources_lack_its_definitions_is_refused(repository, tmp_path):
    record, _ = _run(_copied_sixth(repository)(), repository, tmp_path)
    commit = record.provenance.git_commit
    _write_code_moves(repository, {TRAIN: (commit, _sha256(repository / TRAIN))}, SPLITS)
    (problem,), warnings = code_move_problems(repository)
    assert problem.startswith(f"{CODE_MOVES_FILE}: {SPLITS}: ") and warnings == []
    assert "definition(s) are not in the files it names as its sources" in problem


def test_the_code_hash_follows_numbers_layer_imports_only(repository):
    files = code_files("sixth_replication", repository / "replications", repository)
    # The replication imports train, contract, data.splits...; `execution` runs and scores each job.
    assert {TRAIN, "fer_common/contract.py", "fer_common/data/splits.py", "fer_common/execution.py"} <= set(files)
    assert "fer_common/data/__init__.py" in files  # run on import
    # The runs layer and the report change no measured value: editing them must not make a record stale.
    assert not {"fer_common/runner.py", "fer_common/provenance.py", "fer_common/metadata.py"} & set(files)
    # The registry names every paper and computes nothing: adding one must not make the others' records stale.
    assert "fer_common/registry.py" not in files and not any(name.startswith("replications/chen") for name in files)


# --- data the record can vouch for ---------------------------------------------------------------------


@pytest.fixture
def ckplus(tmp_path, monkeypatch) -> Path:
    """A small CK+48 folder with its SHA256SUMS, and a cache of its own."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "ckplus48"
    make_ckplus(folder, subjects=1, frames=1)
    write_sha256sums(folder)
    return folder


def _loads_ckplus(folder: Path) -> type[SixthReplication]:
    class LoadsCkplus(SixthReplication):
        """The sixth replication, made to load a dataset folder first as real replications do."""

        def prepare(self, config):
            load_dataset("ckplus48", folder, progress=False)
            return super().prepare(config)

    return LoadsCkplus


def test_a_run_on_modified_data_stops_unless_allowed_and_then_says_so(ckplus, tmp_path):
    changed = sorted(ckplus.glob("*/*.png"))[0]
    changed.write_bytes(changed.read_bytes() + b"\0")
    name = changed.relative_to(ckplus).as_posix()
    replication = _loads_ckplus(ckplus)()
    with pytest.raises(DatasetError, match=rf"1 of 7 files .* differ from its SHA256SUMS: {name} \(contents"):
        _run(replication, REPO_ROOT, tmp_path, "quick")

    record, _ = _run(replication, REPO_ROOT, tmp_path, "quick", allow_modified_data=True)
    provenance = record.provenance
    assert provenance.data_verified is False
    assert provenance.data_differences == [f"{ckplus}/{name} (contents differ)"]
    assert all(MODIFIED_DATA_NOTE in row.note for row in record.rows)


def test_a_run_on_clean_data_vouches_for_it(ckplus, tmp_path):
    record, _ = _run(_loads_ckplus(ckplus)(), REPO_ROOT, tmp_path, "quick")
    assert record.provenance.data_verified is True and record.provenance.data_differences == []
    assert not any(MODIFIED_DATA_NOTE in row.note for row in record.rows)


def test_data_other_than_the_latest_full_records_is_named_before_training(repository, tmp_path, caplog):
    replication = _copied_sixth(repository)()
    previous, _ = _run(replication, repository, tmp_path, "quick", write=False)
    previous = with_provenance(previous, dataset_checksum="f" * 64).model_copy(update={"profile": "full"})
    write_record(previous, repository / "results")
    with caplog.at_level(logging.WARNING):
        record, _ = _run(replication, repository, tmp_path, "quick")
    checksum = record.provenance.dataset_checksum
    assert f"the data (checksum {checksum}) differs from what the latest full record" in caplog.text
    assert "f" * 64 in caplog.text
    note = f"data checksum {checksum[:12]} differs from {'f' * 12}, the latest full record's"
    assert all(note in row.note for row in record.rows)


def test_a_malformed_code_moves_file_is_refused_naming_it(repository):
    (repository / CODE_MOVES_FILE).write_text("moves:\n  - {file: fer_common/train.py}\n")
    with pytest.raises(MetadataError, match=r"code_moves.yaml: each entry of `moves` needs file, sha256 and from"):
        code_move_problems(repository)


def test_the_hashed_numbers_layer_is_the_numbers_layer_the_import_rules_declare():
    """Two lists name the numbers layer (the code hash's, import-linter's): they must not drift apart. `bands`
    alone differs: pure arithmetic every layer reads (base), hashed while Boyce's test draws use a paper band."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [contract["layers"] for contract in config["contracts"] if contract["type"] == "layers"]
    declared = next(set(layer.replace(" ", "").split(":")) for layer in layers if "fer_common.execution" in layer)
    assert declared == set(NUMBERS_LAYER) - {"fer_common.bands"}


def _add_claim(repository: Path) -> Path:
    """A claim added to the metadata's `reported` (a paper figure the report now checks), committed."""
    metadata = repository / "replications" / "sixth_replication" / "metadata.yaml"
    metadata.write_text(
        metadata.read_text().replace(
            "beyond_paper:",
            '  - {metric: recall/bright, setting: gray, value: 0.9, n_test: 10, where: "added later"}\nbeyond_paper:',
        )
    )
    _git(repository, "commit", "-qam", "add a claim")
    return metadata


def test_adding_a_claim_to_the_metadata_leaves_records_current_those_of_the_older_rule_too(repository, tmp_path):
    """Rows and verdicts are derived at report time, so `reported` is not hashed. A record made when it was
    (no `metadata_rule`) is judged by its metadata at its commit: a claim added since leaves it current; an
    edit to the config does not."""
    record, _ = _run(_copied_sixth(repository)(), repository, tmp_path)
    meta = load_metadata(_copied_sixth(repository).metadata_file)
    legacy = {
        **record_content(record)["provenance"],
        "metadata_hash": metadata_hash(meta, "full", LEGACY_HASHED_SECTIONS),
    }
    del legacy["metadata_rule"]
    legacy_record = record.model_copy(update={"provenance": Provenance.model_validate(legacy)})
    metadata = _add_claim(repository)
    meta = load_metadata(metadata)
    assert stale_reasons(meta, record, repository) == []
    assert stale_reasons(meta, legacy_record, repository) == []
    (row,) = [row for row in record_rows(meta, record) if row.metric == "recall/bright"]
    assert row.mean is not None and row.verdict != "not run"  # judged from the record's per-seed values

    metadata.write_text(metadata.read_text().replace("config:", "config:\n  extra_setting: 1", 1))
    _git(repository, "commit", "-qam", "edit the config")
    meta = load_metadata(metadata)
    assert stale_reasons(meta, record, repository) == ["metadata changed"]
    assert stale_reasons(meta, legacy_record, repository) == ["metadata changed"]
