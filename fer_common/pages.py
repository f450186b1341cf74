"""One generated page per replication, `results/<id>/README.md`: the paper, its claims, what could explain the
claims that do not reproduce, our extra rows grouped by purpose, speed, what the data audits say of it,
assumptions and figures. Anything unusual (proxy data, a dirty tree, a stale record, a note
every row of a setting repeats) is said once, not on every row.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .bands import ABOVE, BELOW, REPRODUCED
from .claims_figure import HYPOTHESES_FIGURE_NAME, has_hypotheses_figure
from .metadata import FULL_PROFILE
from .metrics import summarize
from .paired import PairedResult, paired_runs, with_comparisons
from .records import latest_record
from .report import (
    DASH,
    EXPLANATIONS_HEADING,
    TIMING_GROUP,
    Explanation,
    PaperResult,
    ResultRow,
    band_text,
    baseline_text,
    claim_text,
    explain_command,
    heading_anchor,
    hypotheses_by_row,
    hypotheses_text,
    inside_band_text,
    interval_text,
    metric_words,
    number_text,
    one_paragraph,
    ours_text,
    paper_label,
    primary_claims,
    stale_text,
    summary_text,
    verdict_link,
)
from .verdicts import INCONCLUSIVE, METHOD

PAGE_NAME = "README.md"
AUDITS_PAGE = "audits.md"  # beside TABLE.md: the data audits and measurements beyond the replications
_NOTE_SEPARATOR = "; "


# The columns of a claim's result, in the headline table and on each page: ours, its baselines, the band, the verdict.
RESULT_COLUMNS = ("ours: mean ± sd [95% CI]", "learnt nothing", "n_test", "one more run, 95% (margin)", "verdict")
HOW_TO_READ_VERDICT = f"""\
### How to read a verdict

*ours* is the mean ± sd over seeds, with the mean of the per-seed 95% Wilson intervals; *learnt nothing* is what
always predicting our test set's largest class (*majority*) or guessing uniformly (*chance*) scores. *One more
run, 95%* is the range our seeds make plausible for one more run of our protocol on a test set of the paper's
size; *margin* is how far from the paper's value still counts as the same result (5 points for a rate unless
the metadata's `margins:` says otherwise, with its reason). The method: {METHOD}.

- **reproduced**: the whole range lies within the paper's value ± margin (for "at least t": our mean's 95% bound
  and most seeds reach t, within the margin).
- **not reproduced**: the paper's value lies outside the range; the words say whether ours is higher or lower
  and by how much. A finding about the paper, not a failure of the suite.
- **inconclusive**: the paper's value lies inside a range wider than its margin: our runs cannot tell. The
  *why* column says what would (more seeds, or nothing when the test set alone is that noisy).
- **proxy**: run on stand-in data, no verdict; **not run**: the data is missing here.

A claim is one sentence of the paper; another reading of an ambiguous sentence is shown as its own row
("other reading") and not counted.
"""


def md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]


# --- notes said once ------------------------------------------------------------------------------------


def _parts(note: str) -> list[str]:
    return [part.strip() for part in note.split(_NOTE_SEPARATOR) if part.strip()]


def setting_notes(paper: PaperResult) -> dict[str, list[str]]:
    """Note parts every row of a setting repeats (settings with two rows or more), to say once per setting."""
    by_setting: dict[str, list[ResultRow]] = defaultdict(list)
    for row in paper.rows:
        by_setting[row.setting].append(row)
    shared = {}
    for setting, rows in by_setting.items():
        if len(rows) < 2:
            continue
        common = _parts(_row_note_text(paper, rows[0]))
        for row in rows[1:]:
            parts = _parts(_row_note_text(paper, row))
            common = [part for part in common if part in parts]
        if common:
            shared[setting] = common
    return shared


def _row_note_text(paper: PaperResult, row: ResultRow) -> str:
    """The row's note, without the missing-data text the page says once at the top (the record's text may
    add the loader's message to the row's)."""
    missing = paper.record.missing if paper.record else None
    return "" if missing and row.note.strip() and row.note.strip() in missing else row.note


def row_note(paper: PaperResult, row: ResultRow, shared: dict[str, list[str]]) -> str:
    said = shared.get(row.setting, [])
    return _NOTE_SEPARATOR.join(part for part in _parts(_row_note_text(paper, row)) if part not in said)


# --- sections -------------------------------------------------------------------------------------------


def _heading(paper: PaperResult) -> list[str]:
    meta = paper.meta
    lines = [
        f"# {paper_label(meta)}: {meta.title}",
        "",
        f"*{', '.join(meta.authors)}, {meta.year}.* Generated by `fer-replicate tables` from "
        + (f"[`{paper.record_name}`]({paper.record_name}) and " if paper.record else "")
        + f"`{meta.folder.parent.name if meta.folder else 'replications'}/{meta.id}/metadata.yaml`; do not edit "
        "by hand. Back to [all results](../TABLE.md).",
        "",
    ]
    if paper.record is None:
        return [*lines, f"**{summary_text(paper)}**", ""]
    provenance = paper.record.provenance
    commit = (provenance.git_commit or "unknown")[:7]
    seeds = [f"{paper.seeds} seeds" if paper.seeds > 1 else "1 seed"] if paper.seeds else []  # none: nothing ran
    facts = [
        f"**{summary_text(paper)}**",
        f"{meta.dataset.name} ({paper.record.data} data)",
        *seeds,
        f"commit `{commit}`",
        provenance.created_utc[:10],
    ]
    searched = hypotheses_text(paper)
    searched_line = [f"[What could explain the gaps](#{heading_anchor(EXPLANATIONS_HEADING)}): {searched}.", ""]
    return [*lines, " · ".join(facts), "", *(searched_line if searched else [])]


def _settings_by_note(shared: dict[str, list[str]]) -> dict[str, list[str]]:
    """Settings grouped by the note all their rows repeat, so a note several settings share is said once."""
    by_note: dict[str, list[str]] = {}
    for setting, parts in shared.items():
        by_note.setdefault(_NOTE_SEPARATOR.join(parts), []).append(setting)
    return by_note


def _unusual(paper: PaperResult, shared: dict[str, list[str]]) -> list[str]:
    """What a reader must know before trusting any row, each said once."""
    if paper.record is None:
        return []
    notes = []
    if paper.stale:
        notes.append(f"**Stale:** {stale_text(paper)}; re-run `make replicate-{paper.meta.id}`.")
    if paper.record.provenance.git_dirty:
        notes.append("**Uncommitted changes:** the record was made from a working tree with uncommitted edits.")
    if paper.record.data == "proxy":
        notes.append(f"**Proxy data:** {one_paragraph(paper.meta.dataset.description)} Claims get no verdict.")
    if paper.record.missing:
        notes.append(f"**Not run here:** {one_paragraph(paper.record.missing)}")
    for note, settings in _settings_by_note(shared).items():
        names = ", ".join(f"`{setting}`" for setting in settings)
        notes.append(f"**Every row of {names}:** {note}.")
    return [line for note in notes for line in (f"> {note}", ">")][:-1] + ([""] if notes else [])


def _protocol(paper: PaperResult) -> list[str]:
    meta = paper.meta
    lines = ["## Protocol", "", one_paragraph(meta.protocol), "", "Settings:", ""]
    lines += [f"- `{setting}`: {one_paragraph(description)}" for setting, description in meta.settings.items()]
    return [*lines, "", *_stopping(paper)]


def _stopping(paper: PaperResult) -> list[str]:
    """How long each setting's seeds trained where a job stops on a plateau (`stopped_early` in its details):
    how often the epoch cap, not the plateau, ended training."""
    if paper.record is None:
        return []
    cap = paper.record.provenance.config.get("epochs")
    lines = []
    for setting, entry in paper.record.settings.items():
        details = [seed.details for seed in entry.seeds.values()]
        if not details or any("stopped_early" not in detail for detail in details):
            continue
        early = sum(detail["stopped_early"] in (True, "True") for detail in details)
        epochs = ", ".join(str(detail.get("epochs_trained", "?")) for detail in details)
        lines.append(
            f"- `{setting}`: stopped on its plateau in {early} of {len(details)} seeds (epochs trained: {epochs}); "
            f"the cap{f' of {cap} epochs' if cap else ''} ended {len(details) - early}"
        )
    return ["Training length:", "", *lines, ""] if lines else []


def _claims(paper: PaperResult) -> list[str]:
    if not paper.meta.reported:  # a model recipe of ours: its rows are all beyond any paper
        return []
    header = ["claim", "where in the paper", "reported", *RESULT_COLUMNS, "why"]
    rows = [
        [
            claim_text(row),
            row.where,
            number_text(row.reported, row.kind),
            ours_text(row),
            baseline_text(row),
            row.n_test or "—",
            interval_text(row),
            verdict_link(paper, row),
            row.judgement or "—",
        ]
        for row in paper.claims
    ]
    return ["## Paper claims", "", *md_table(header, rows), "", HOW_TO_READ_VERDICT]


PAIRED_TESTS_TEXT = (
    "Two settings scored on the same images, seed by seed: the difference of their accuracies with its 95% "
    "interval, and McNemar's exact test on the images one gets right and the other wrong. Whether two "
    "intervals overlap says nothing about a difference on the same images; this does."
)


def _paired_tests(paper: PaperResult) -> list[str]:
    """Each of the metadata's comparisons, seed by seed and over the seeds (from the record's per-image
    predictions; records made before they were kept have none)."""
    if paper.record is None or not paper.meta.comparisons:
        return []
    _, paired = with_comparisons(paper.meta, paper.record.settings)
    lines = []
    for comparison in paper.meta.comparisons:
        results = {
            seed: tests[comparison.metric]
            for seed, tests in paired.get(comparison.setting, {}).items()
            if comparison.metric in tests
        }
        if not results:
            continue
        named = comparison.images.replace("_", " ")
        images = "the images the claim is scored on" if comparison.images == "scored" else f"the {named} images"
        title = f"**{comparison.setting} minus {comparison.against}** ({metric_words(comparison.metric)}, on {images})"
        lines += _paired_lines(title, results)
    return ["### Paired tests", "", PAIRED_TESTS_TEXT, "", *lines, ""] if lines else []


def _paired_lines(title: str, results: dict[str, PairedResult]) -> list[str]:
    """`- title: +2.0 ± 2.1 points over 3 seeds; ...` and a line per seed."""
    summary = summarize([100 * result.difference for result in results.values()])
    higher = sum(result.p_value < 0.05 and result.difference > 0 for result in results.values())
    lower = sum(result.p_value < 0.05 and result.difference < 0 for result in results.values())
    return [
        f"- {title}: {summary['mean']:+.1f} ± {summary['sd']:.1f} points over {len(results)} seeds; at p < 0.05, "
        f"{higher} of {len(results)} seeds higher and {lower} lower",
        *(f"  - seed {seed}: {result.describe()}" for seed, result in results.items()),
    ]


def _hypotheses_paired(paper: PaperResult) -> list[str]:
    """Each hypothesis's record against the record as run, on the same seeds and test images (where both keep
    per-image predictions): the difference in accuracy its change makes, with McNemar's test per seed."""
    if paper.record is None:
        return []
    lines = []
    results_dir = paper.record.path.parent.parent
    pairs = {(entry.profile, entry.reads_setting or entry.setting) for entry in paper.meta.hypotheses}
    for profile, setting in sorted(pairs):
        record = latest_record(paper.meta.id, profile, results_dir) if profile != FULL_PROFILE else None
        if record is None:
            continue
        results = paired_runs(record.seeds_of(setting), paper.record.seeds_of(setting))
        if results:
            lines += _paired_lines(
                f"`{profile}` minus the run as made ({setting.replace('_', ' ')}, accuracy)", results
            )
    intro = (
        "Each hypothesis against the run as made, seed by seed on the same test images: the accuracy its change "
        "adds or takes away, with McNemar's exact test (records made before per-image predictions were kept "
        "have none)."
    )
    return ["### Paired with the run as made", "", intro, "", *lines, ""] if lines else []


def _explanations(paper: PaperResult) -> list[str]:
    """One matrix for every claim that does not reproduce: a column per claim (the paper's value and band), a
    row per hypothesis (what its profile's latest record gives, and whether that lands inside the band)."""
    if not paper.explained:
        return []
    replication_id = paper.meta.id
    claims = [explained.claim for explained in paper.explained]
    hypotheses = hypotheses_by_row(paper)
    profiles = {profile for _, profile, _ in hypotheses}
    commands = sorted({explain_command(replication_id, profile) for profile in profiles})
    intro = (
        "Each row runs the replication another way the paper's text allows (a profile of "
        f"`replications/{replication_id}/metadata.yaml`; {' and '.join(f'`{command}`' for command in commands)} make "
        "them). Each column is a claim that does not reproduce: the paper's value and its band. A cell is what the "
        "profile's latest record gives (mean ± sd over seeds) and where that falls against the band; **bold** "
        "lands inside it, and would explain the paper's number."
    )
    header = [
        "hypothesis",
        *(
            f"{claim_text(claim)}: {number_text(claim.reported, claim.kind)}, band {band_text(claim)}"
            for claim in claims
        ),
        "record",
    ]
    rows = [["the replication as run (`full`)", *(_cell(claim, claim) for claim in claims), "this page's record"]]
    for (text, profile, measure), by_column in hypotheses.items():
        entries = list(by_column.values())
        reads = f" (reads `{measure}`)" if measure else ""
        record = next((entry for entry in entries if entry.record_name), None)
        command = explain_command(replication_id, profile)
        record_cell = f"[{record.record_name}]({record.record_name})" if record else f"not run yet: `{command}`"
        if record and record.stale:
            record_cell += f" *stale: {', '.join(record.stale)}*"
        cells = [
            _explanation_cell(claims[column], by_column[column]) if column in by_column else DASH
            for column in range(len(claims))
        ]
        rows.append([f"{one_paragraph(text)}{reads}; `{profile}`", *cells, record_cell])
    figure = (
        [f"![Each hypothesis against each claim's band: green inside, red outside]({HYPOTHESES_FIGURE_NAME})", ""]
        if has_hypotheses_figure(paper)
        else []
    )
    return [
        EXPLANATIONS_HEADING,
        "",
        intro,
        "",
        *figure,
        *md_table(header, rows),
        "",
        *_variant_matrix(paper),
        *_hypotheses_paired(paper),
    ]


_MARKS = {REPRODUCED: "✓", BELOW: "✗", ABOVE: "✗", INCONCLUSIVE: "?"}


def _variant_matrix(paper: PaperResult) -> list[str]:
    """Every variant against every primary claim, by the verdict rule: what it brings in, what it pushes out."""
    if not paper.variants:
        return []
    counted = primary_claims(paper)
    computed = [variant for variant in paper.variants if variant.record_name]
    cells = len(computed) * len(counted)
    explaining = [variant for variant in computed if variant.explains]
    intro = (
        f"Each variant judged on every claim by the verdict rule above (✓ reproduced, ✗ not reproduced, "
        f"? inconclusive), passing claims included. {len(computed)} of {len(paper.variants)} variants computed, "
        f"against {len(counted)} claims: {cells} cells, so a few could agree with the paper by chance alone "
        "(multiple comparisons). A variant counts as an explanation only when it brings a claim that does not "
        "reproduce as run into agreement (not ruled out, its mean within the claim's margin of the paper's value) "
        "without ruling out a claim that is not ruled out as run: "
        + (", ".join(f"`{variant.profile}`" for variant in explaining) + "." if explaining else "none does.")
    )
    header = ["variant", *(claim_text(paper.claims[i]) for i in counted), "brings in", "pushes out", "explains"]

    def mark(row) -> str:
        return f"{_MARKS.get(row.verdict, row.verdict)} {number_text(row.mean, row.kind)}"

    def seeds(rows) -> str:
        return f" ({max((row.n_seeds for row in rows), default=0)} seeds)"

    rows = [["as run (`full`)" + seeds(paper.claims), *(mark(paper.claims[i]) for i in counted), DASH, DASH, DASH]]
    for variant in paper.variants:
        if not variant.record_name:
            rows.append([f"`{variant.profile}`", *(["not run yet"] * len(counted)), DASH, DASH, DASH])
            continue
        rows.append(
            [
                f"`{variant.profile}`" + seeds(variant.rows.values()),
                *(mark(variant.rows[i]) if i in variant.rows else DASH for i in counted),
                str(len(variant.brings_in)),
                str(len(variant.pushes_out)),
                "yes" if variant.explains else "no",
            ]
        )
    return ["### Every claim under every variant", "", intro, "", *md_table(header, rows), ""]


def _explanation_cell(claim: ResultRow, entry: Explanation) -> str:
    """What a hypothesis gives for one claim, or why there is nothing to show."""
    if not entry.record_name:
        return "not run yet"
    if entry.row is None:
        return f"no `{entry.measure}` in the record"
    if entry.row.mean is None:
        return "not run: data missing here"
    return _cell(claim, entry.row)


def _cell(claim: ResultRow, row: ResultRow) -> str:
    """`89.1 ± 2.8% (above)`, or bold when the value lands inside the claim's band."""
    place = inside_band_text(claim, row)
    spread = f" ± {number_text(row.sd, row.kind, unit=False)}" if row.n_seeds > 1 and row.sd else ""
    unit = "%" if row.kind == "proportion" else ""
    text = f"{number_text(row.mean, row.kind, unit=False)}{spread}{unit} ({place})"
    return f"**{text}**" if place == "inside" else text


def _audits(paper: PaperResult) -> list[str]:
    """What the latest data audit says of this replication, pointing to its numbers."""
    if not paper.audit_lines:
        return []
    said = " ".join(line.removeprefix("- ") for line in paper.audit_lines)
    link = f"../{AUDITS_PAGE}#{heading_anchor(paper.audit_title)}"
    return ["## Data audits", "", f"**{paper.audit_title}** ([the audit]({link})): {said}", ""]


def _rows_table(paper: PaperResult, rows: list[ResultRow], shared: dict[str, list[str]]) -> list[str]:
    notes = [row_note(paper, row, shared) for row in rows]
    header = ["setting", "metric", "ours: mean ± sd [95% CI]"] + (["note"] if any(notes) else [])
    cells = [
        [row.setting, f"`{row.metric}`", ours_text(row)] + ([note] if any(notes) else [])
        for row, note in zip(rows, notes, strict=True)
    ]
    return md_table(header, cells)


def _beyond_paper(paper: PaperResult, shared: dict[str, list[str]]) -> list[str]:
    groups: dict[str, list[ResultRow]] = {}
    for row in paper.beyond_paper:
        if row.group != TIMING_GROUP:
            groups.setdefault(row.group, []).append(row)
    if not groups:
        return []
    lines = ["## Beyond the paper" if paper.meta.reported else "## Results", ""]
    for group, rows in groups.items():
        lines += [f"### {group.capitalize()}", "", *_rows_table(paper, rows, shared), ""]
    return lines


def _speed(paper: PaperResult, shared: dict[str, list[str]]) -> list[str]:
    rows = [row for row in paper.beyond_paper if row.group == TIMING_GROUP]
    if not rows:
        return []
    intro = "Wall-clock figures of the run's machine: they say how long a run takes there, nothing about the paper."
    return ["## Speed (this machine)", "", intro, "", *_rows_table(paper, rows, shared), ""]


def _assumptions(paper: PaperResult) -> list[str]:
    choices = paper.meta.assumptions
    if not choices:
        return []
    where = " where the paper is silent" if paper.meta.reported else ""  # a recipe of ours has no paper
    lines = ["## Assumptions", "", f"<details><summary>{len(choices)} choices{where}</summary>", ""]
    lines += [f"- **{choice.choice}** — {choice.why}" for choice in choices]
    return [*lines, "", "</details>", ""]


def figure_paths(paper: PaperResult) -> list[Path]:
    """The PNGs beside the record (`<record stem>/*.png`), sorted."""
    if paper.record is None:
        return []
    folder = paper.record.path.with_suffix("")
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def _figures(paper: PaperResult) -> list[str]:
    figures = figure_paths(paper)
    if not figures:
        return []
    by_setting: dict[str, list[Path]] = {setting: [] for setting in paper.meta.settings}
    for figure in figures:
        setting, _, _ = figure.stem.partition("-")
        by_setting.setdefault(setting, []).append(figure)
    lines = ["## Figures", ""]
    for setting, paths in by_setting.items():
        if not paths:
            continue
        images = " ".join(f"![{path.stem}]({path.parent.name}/{path.name})" for path in paths)
        lines += [f"**{setting}**", "", images, ""]
    return lines


def render_page(paper: PaperResult) -> str:
    shared = setting_notes(paper)
    sections = [
        _heading(paper),
        _unusual(paper, shared),
        _claims(paper),
        _paired_tests(paper),
        _explanations(paper),
        _beyond_paper(paper, shared),
        _speed(paper, shared),
        _audits(paper),
        _protocol(paper),
        _assumptions(paper),
        _figures(paper),
    ]
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"
