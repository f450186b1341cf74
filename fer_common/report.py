"""What the generated report shows: each replication's latest `full` record read against its metadata.

`collect_papers` joins a record's rows with the metadata entries they came from (claim, where, which way is
better, group), reads what the metadata's hypotheses give for each claim that does not reproduce, and the
`*_text` functions put a row into words. `latest_measurements` reads the newest audit, cross-dataset matrix
and detector benchmark. `tables` (the headline table, CSV, TeX, the audits page and the README status) and
`pages` (one page per replication) render them; neither reads a record itself.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import measurement_pages, paths
from .bands import ABOVE, BELOW, NOT_RUN, PROXY, REPRODUCED
from .metadata import (
    FULL_PROFILE,
    Hypothesis,
    ReplicationMetadata,
    list_replications,
    load_metadata,
    recipes_dir,
)
from .metrics import summarize
from .provenance import stale_reasons
from .records import latest_record, record_name
from .rows import mean_denominator, record_rows
from .schema import BandEntry, Record, Row, Summary
from .verdicts import INCONCLUSIVE, judge

DASH = "—"
TIMING_GROUP = "timing"
EXPLANATIONS_HEADING = "## What could explain the gaps"
# The verdict of a claim the latest record has no row for (no record yet, or a claim added since).
NO_RESULT = "no result"
# A difference smaller than this (in the row's unit) reads as "equal to the paper's".
_SAME = 5e-4


@dataclass(frozen=True)
class ResultRow:
    """One row of a record with what its metadata says about it; `group` is None for a paper claim."""

    metric: str
    setting: str
    kind: str
    group: str | None
    better: str | None
    reported: float | None
    n_test: int | None
    where: str
    mean: float | None
    sd: float | None
    n_seeds: int
    ci: tuple[float, float] | None
    band: BandEntry | None
    verdict: str
    position: str | None
    note: str
    claim: str = "about"  # or "at_least" / "at_most": a threshold the paper claims
    reading: str = "primary"  # "alternative": another reading of an ambiguous sentence
    chance: float | None = None  # uniform guessing on our test set (accuracy and recall rows)
    majority: float | None = None  # always the test set's largest class
    interval: tuple[float, float] | None = None  # what our runs make plausible for one more run (verdicts.judge)
    margin: float | None = None  # the claim's equivalence margin
    judgement: str = ""  # why the verdict is what it is

    @property
    def is_claim(self) -> bool:
        return self.group is None

    @property
    def lower_is_better(self) -> bool:
        return self.better == "lower"


@dataclass(frozen=True)
class Explanation:
    """A hypothesis of the metadata and what its profile's latest record gives for it."""

    hypothesis: Hypothesis
    record_name: str  # "" when the profile has no record yet
    row: ResultRow | None  # the measure in the claim's setting; None: no record, or no such row in it
    stale: list[str]

    @property
    def measure(self) -> str:
        return self.hypothesis.measure or self.hypothesis.metric


@dataclass(frozen=True)
class ClaimExplanations:
    """A paper claim that does not reproduce, with the hypotheses that might explain it."""

    claim: ResultRow
    explanations: list[Explanation]


@dataclass(frozen=True)
class PaperResult:
    """A replication's metadata, its latest full record (None: not run yet) and the rows to show.

    explained: the claims that do not reproduce and have hypotheses; audit_lines: what the latest data audit
    says of this replication (markdown list items), under the audit's section `audit_title`.
    """

    meta: ReplicationMetadata
    record: Record | None
    rows: list[ResultRow]
    stale: list[str]
    explained: list[ClaimExplanations] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    audit_lines: list[str] = field(default_factory=list)
    audit_title: str = ""

    @property
    def claims(self) -> list[ResultRow]:
        return [row for row in self.rows if row.is_claim]

    @property
    def beyond_paper(self) -> list[ResultRow]:
        return [row for row in self.rows if not row.is_claim]

    @property
    def record_name(self) -> str:
        return record_name(self.record)

    @property
    def seeds(self) -> int:
        return max((row.n_seeds for row in self.rows), default=0)


def _row(entry: Row, *, group: str | None, better: str | None, where: str = "") -> ResultRow:
    """A ResultRow from a record row and what the metadata says about it."""
    return ResultRow(
        metric=entry.metric,
        setting=entry.setting,
        kind=entry.kind,
        group=group,
        better=better,
        reported=entry.reported,
        n_test=entry.n_test,
        where=where,
        mean=entry.mean,
        sd=entry.sd,
        n_seeds=sum(value is not None for value in entry.values),
        ci=tuple(entry.ci) if entry.ci else None,
        band=entry.band,
        verdict=entry.verdict,
        position=entry.position,
        note=entry.note,
        claim=entry.claim,
        reading=entry.reading,
        chance=entry.chance,
        majority=entry.majority,
        interval=tuple(entry.interval) if entry.interval else None,
        margin=entry.margin,
        judgement=entry.judgement or "",
    )


def _summary_row(metric: str, setting: str, kind: str, summary: Summary) -> ResultRow:
    """A ResultRow of a measure only a hypothesis reads (no row of the record): its summary over seeds."""
    return ResultRow(
        metric=metric,
        setting=setting,
        kind=kind,
        group=None,
        better=None,
        reported=None,
        n_test=None,
        where="",
        mean=summary.mean,
        sd=summary.sd,
        n_seeds=sum(value is not None for value in summary.values),
        ci=None,
        band=None,
        verdict=NOT_RUN,
        position=None,
        note="",
    )


def _claim_without_result(meta: ReplicationMetadata, index: int) -> ResultRow:
    figure = meta.reported[index]
    return ResultRow(
        metric=figure.metric,
        setting=figure.setting,
        kind=figure.kind,
        group=None,
        better=figure.better,
        reported=figure.value,
        n_test=figure.n_test,
        where=figure.where,
        mean=None,
        sd=None,
        n_seeds=0,
        ci=None,
        band=None,
        verdict=NO_RESULT,
        position=None,
        note="",
        claim=figure.claim,
        reading=figure.reading,
    )


def paper_result(meta: ReplicationMetadata, record: Record | None) -> PaperResult:
    """Rows in metadata order: every claim (even one the record lacks), then the beyond-paper rows it has."""
    if record is None:
        claims = [_claim_without_result(meta, i) for i in range(len(meta.reported))]
        return PaperResult(meta, None, claims, [])
    # One row per metadata entry, in its order (`rows.build_rows`): a paper may claim one metric several times
    # (about a value and as a threshold, read two ways, or two sentences giving it two values).
    derived = record_rows(meta, record)
    claim_rows, extra_rows = derived[: len(meta.reported)], derived[len(meta.reported) :]
    rows = []
    for figure, entry in zip(meta.reported, claim_rows, strict=True):
        # The metadata's place in the paper, not the record's: it may have been corrected since.
        rows.append(_row(entry, group=None, better=figure.better, where=figure.where))
    for extra, entry in zip(meta.beyond_paper, extra_rows, strict=True):
        rows.append(_row(entry, group=extra.group, better=None))
    return PaperResult(meta, record, rows, stale_reasons(meta, record))


def collect_papers(results_dir: Path | None = None, root: Path | None = None) -> list[PaperResult]:
    """Every replication (sorted by id) with its latest full record, what its hypotheses give and what the
    latest duplicate audit says of it."""
    audit = latest_measurements(results_dir).duplicate_audit
    audit_text = measurement_pages.audit_markdown(audit) if audit else ""
    papers = []
    for replication_id in list_replications(root):
        meta = load_metadata(replication_id, root)
        paper = paper_result(meta, latest_record(replication_id, FULL_PROFILE, results_dir))
        lines = _lines_about(audit_text, replication_id)
        papers.append(
            PaperResult(
                paper.meta,
                paper.record,
                paper.rows,
                paper.stale,
                explained=explain_claims(paper, results_dir),
                variants=variants(paper, results_dir),
                audit_lines=lines,
                audit_title=audit_text.splitlines()[0].lstrip("#").strip() if lines else "",
            )
        )
    return papers


def collect_recipes(results_dir: Path | None = None, root: Path | None = None) -> list[PaperResult]:
    """Every model recipe (sorted by id) with its latest full record: rows, but no paper claims."""
    base = recipes_dir(root)
    return [
        paper_result(load_metadata(recipe_id, base), latest_record(recipe_id, FULL_PROFILE, results_dir))
        for recipe_id in list_replications(base)
    ]


# --- hypotheses -------------------------------------------------------------------------------------------


def explain_claims(paper: PaperResult, results_dir: Path | None = None) -> list[ClaimExplanations]:
    """For each claim that is not shown to reproduce (not reproduced, or inconclusive; on proxy data, outside
    the paper's band: the first row of its metric and setting), its hypotheses with what their profiles' latest
    records give."""
    explained, seen = [], set()
    for claim in paper.claims:
        key = (claim.metric, claim.setting)
        if key in seen:
            continue
        seen.add(key)
        hypotheses = [entry for entry in paper.meta.hypotheses if (entry.metric, entry.setting) == key]
        missed = claim.verdict in (BELOW, ABOVE, INCONCLUSIVE) or (
            claim.verdict == PROXY and claim.position in ("below", "above")
        )
        if hypotheses and missed:
            explanations = [_explanation(paper.meta, entry, claim.kind, results_dir) for entry in hypotheses]
            explained.append(ClaimExplanations(claim, explanations))
    return explained


def _explanation(meta: ReplicationMetadata, hypothesis: Hypothesis, kind: str, results_dir: Path | None) -> Explanation:
    """What the hypothesis's profile's latest record gives: the measure's row, or, for a measure the record has
    no row for (one only a hypothesis reads), its summary over seeds, in the claim's kind."""
    record = latest_record(meta.id, hypothesis.profile, results_dir)
    if record is None:
        return Explanation(hypothesis, "", None, [])
    measure = hypothesis.measure or hypothesis.metric
    setting = hypothesis.reads_setting or hypothesis.setting
    entry = next((row for row in record_rows(meta, record) if (row.metric, row.setting) == (measure, setting)), None)
    ran = record.settings.get(setting)
    summary = ran.summary.get(measure) if ran else None
    if entry is not None:
        row = _row(entry, group=None, better=None)
    else:
        row = _summary_row(measure, setting, kind, summary) if summary is not None else None
    return Explanation(hypothesis, record_name(record), row, stale_reasons(meta, record))


@dataclass(frozen=True)
class Variant:
    """The replication run another way (a hypothesis's profile), with every primary claim under it: which
    claims it brings into agreement with the paper and which it pushes out."""

    label: str
    profile: str
    record_name: str  # "" when the profile has no record yet
    rows: dict[int, ResultRow]  # index in `paper.claims` -> that claim's row in the variant's record
    brings_in: list[int]  # claims not reproduced as run that the variant agrees with (`agrees`)
    pushes_out: list[int]  # claims not ruled out as run that the variant rules out

    @property
    def explains(self) -> bool:
        return bool(self.brings_in) and not self.pushes_out


RULED_OUT = (BELOW, ABOVE)


def agrees(row: ResultRow) -> bool:
    """Whether a row agrees with the paper's claim: not ruled out, and its mean within the claim's margin of
    the paper's value (on the claim's side of a threshold). Not being ruled out alone is not enough: fewer seeds
    widen the interval and would let any variant "agree"."""
    if row.verdict in RULED_OUT or row.mean is None or row.reported is None or row.margin is None:
        return False
    if row.claim == "at_least":
        return row.mean >= row.reported - row.margin
    if row.claim == "at_most":
        return row.mean <= row.reported + row.margin
    return abs(row.mean - row.reported) <= row.margin


def primary_claims(paper: PaperResult) -> list[int]:
    """Indices in `paper.claims` of the claims counted: primary readings that have a result."""
    return [i for i, row in enumerate(paper.claims) if row.reading == "primary" and row.mean is not None]


def variants(paper: PaperResult, results_dir: Path | None = None) -> list[Variant]:
    """Every hypothesis profile of the paper (once, however many claims it was written for; a profile read in
    another setting is a variant of its own) judged on every primary claim by the same verdict rule, so a
    variant that fixes one claim and breaks another shows both."""
    if paper.record is None:
        return []
    meta = paper.meta
    counted = primary_claims(paper)
    labels: dict[tuple[str, str | None], str] = {}
    for hypothesis in meta.hypotheses:
        if hypothesis.measure is None and (hypothesis.profile != FULL_PROFILE or hypothesis.reads_setting):
            labels.setdefault((hypothesis.profile, hypothesis.reads_setting), hypothesis.hypothesis)
    found = []
    for (profile, reads_setting), label in labels.items():
        record = latest_record(meta.id, profile, results_dir)
        rows: dict[int, ResultRow] = {}
        for index in counted if record is not None else []:
            row = _variant_row(meta, record, paper.claims[index], reads_setting)
            if row is not None:
                rows[index] = row
        brings_in = [i for i, row in rows.items() if paper.claims[i].verdict in RULED_OUT and agrees(row)]
        pushes_out = [
            i for i, row in rows.items() if paper.claims[i].verdict not in RULED_OUT and row.verdict in RULED_OUT
        ]
        name = record_name(record)
        shown = profile + (f", read in {reads_setting}" if reads_setting else "")
        found.append(Variant(label, shown, name, rows, brings_in, pushes_out))
    return found


def _variant_row(meta: ReplicationMetadata, record: Record, claim: ResultRow, reads_setting: str | None):
    """A claim judged on a variant's record: its metric's per-seed values in the claim's setting (or
    `reads_setting`), by the verdict rule; None when the record has no such values."""
    seeds = record.seeds_of(reads_setting or claim.setting)
    summary = summarize([entry.metrics.get(claim.metric) for entry in seeds.values()])  # NaN: not reached
    if not summary["n"]:
        return None
    values = [value for value in summary["values"] if value is not None]
    figure = next(
        f for f in meta.reported if (f.metric, f.setting, f.claim) == (claim.metric, claim.setting, claim.claim)
    )
    margin = meta.margin(claim.metric, claim.setting, claim.claim, claim.kind, figure.floor)
    judgement = judge(
        values,
        claim.reported,
        claim=claim.claim,
        kind=claim.kind,
        margin=margin,
        n_ours=mean_denominator(claim.metric, seeds),
        n_paper=claim.n_test,
        data=record.data,
    )
    return replace(
        claim,
        mean=summary["mean"],
        sd=summary["sd"],
        n_seeds=summary["n"],
        ci=None,
        verdict=judgement.verdict,
        interval=None if judgement.low is None else (judgement.low, judgement.high),
        margin=margin,
        judgement=judgement.reason,
    )


HypothesisKey = tuple[str, str, str | None]  # (its text, its profile, the measure it reads)


def hypotheses_by_row(paper: PaperResult) -> dict[HypothesisKey, dict[int, Explanation]]:
    """Each distinct hypothesis with what it gives per claim column (the index in `paper.explained`): one
    hypothesis may explain several claims, and reads each claim's own metric unless it names a `measure`."""
    hypotheses: dict[HypothesisKey, dict[int, Explanation]] = {}
    for column, explained in enumerate(paper.explained):
        for entry in explained.explanations:
            key = (entry.hypothesis.hypothesis, entry.hypothesis.profile, entry.hypothesis.measure)
            hypotheses.setdefault(key, {})[column] = entry
    return hypotheses


def hypotheses_text(paper: PaperResult, *, names: bool = True) -> str:
    """How far the search for what explains the claims that do not reproduce has got, e.g. "3 of 7 hypotheses
    computed; 1 lands inside a band: `explain_last_epoch` for loss (random split)", without what follows the
    colon when not `names` ("" without hypotheses)."""
    hypotheses = hypotheses_by_row(paper)
    if not hypotheses:
        return ""
    computed = sum(any(entry.record_name for entry in by_column.values()) for by_column in hypotheses.values())
    landing = []  # named by the measure it reads, else by its profile
    for (_, profile, measure), by_column in hypotheses.items():
        answers = [(paper.explained[column].claim, entry) for column, entry in by_column.items()]
        inside = [claim_text(claim) for claim, entry in answers if inside_band_text(claim, entry.row) == "inside"]
        if inside:
            listed = inside[0] if len(inside) == 1 else f"{', '.join(inside[:-1])} and {inside[-1]}"
            landing.append(f"`{measure or profile}` for {listed}")
    found = f"{len(landing)} land{'s' if len(landing) == 1 else ''} inside a band"
    found += f": {'; '.join(landing)}" if names else ""
    text = f"{computed} of {len(hypotheses)} hypotheses computed; " + (found if landing else "none lands inside a band")
    judged = [variant for variant in paper.variants if variant.record_name]
    if judged:
        explaining = [f"`{variant.profile}`" for variant in judged if variant.explains]
        text += (
            f"; judged on every claim, {', '.join(explaining)} explain{'s' if len(explaining) == 1 else ''} a gap "
            "without opening another"
            if explaining
            else "; judged on every claim, none explains a gap without opening another"
        )
    return text


def explain_command(replication_id: str, profile: str) -> str:
    """The command that makes a hypothesis profile's record."""
    return f"make replicate-{replication_id}" if profile == FULL_PROFILE else f"make explain-{replication_id}"


def inside_band_text(claim: ResultRow, row: ResultRow | None) -> str:
    """`inside`, `below` or `above`: where a row's mean (a hypothesis's) falls against the claim's band."""
    if row is None or row.mean is None or claim.band is None:
        return DASH
    if claim.band.low <= row.mean <= claim.band.high:
        return "inside"
    return "above" if row.mean > claim.band.high else "below"


def verdict_link(paper: PaperResult, row: ResultRow, page: str = "") -> str:
    """The verdict in words, linked to the claim's "What could explain" section (on `page`) when it has one."""
    text = verdict_text(row)
    if any(explained.claim is row for explained in paper.explained):
        return f"[{text}]({page}#{heading_anchor(EXPLANATIONS_HEADING)})"
    return text


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


# --- audits and measurements ------------------------------------------------------------------------------

# Where the commands that measure beyond the replications write (see records.NOT_RECORD_FOLDERS).
DUPLICATE_AUDITS = "audits/fer2013-duplicates/*.json"
CROSS_DATASET_RECORDS = "cross-dataset/*/cross-dataset.json"
DETECTOR_BENCHES = "bench/detectors-*.json"
SPEED_BENCHES = "bench/bench-*.json"


@dataclass(frozen=True)
class Measurements:
    """The newest record of each measurement beyond the replications (None: not made yet), as plain JSON (they
    are no replication records) with an extra `_path` key: the file it was read from."""

    duplicate_audit: dict | None
    cross_dataset: dict | None
    detector_bench: dict | None
    speed_bench: dict | None = None  # `fer-replicate bench`: training and inference speed


def latest_measurements(results_dir: Path | None = None) -> Measurements:
    base = Path(results_dir or paths.results_dir())
    return Measurements(
        _latest_json(base, DUPLICATE_AUDITS),
        _latest_json(base, CROSS_DATASET_RECORDS),
        _latest_json(base, DETECTOR_BENCHES),
        _latest_json(base, SPEED_BENCHES),
    )


def _latest_json(base: Path, pattern: str) -> dict | None:
    """The newest JSON file matching `pattern` under `base`, by its provenance's creation time."""
    found = []
    for path in base.glob(pattern):
        content = json.loads(path.read_text(encoding="utf-8"))
        found.append(({**content, "_path": str(path)}, content["provenance"]["created_utc"], path.name))
    return max(found, key=lambda entry: entry[1:])[0] if found else None


def _lines_about(markdown: str, replication_id: str) -> list[str]:
    """The list items of a report section that begin with the replication's id (`- `neamtiu`: ...`)."""
    return [line for line in markdown.splitlines() if line.startswith(f"- `{replication_id}`")]


# --- words ------------------------------------------------------------------------------------------


def number_text(value: float | None, kind: str, *, unit: bool = True) -> str:
    """`81.4%` for a proportion, `0.512` for a value."""
    if value is None:
        return DASH
    if kind == "proportion":
        return f"{100 * value:.1f}" + ("%" if unit else "")
    return f"{value:.3f}"


def ours_text(row: ResultRow) -> str:
    """`81.4 ± 2.1% [76.0, 86.3]`; one seed or seeds that all agree show no ± (an sd of 0 means nothing)."""
    if row.mean is None:
        return DASH
    unit = "%" if row.kind == "proportion" else ""
    interval = ""
    if row.ci:
        interval = f" [{number_text(row.ci[0], row.kind, unit=False)}, {number_text(row.ci[1], row.kind, unit=False)}]"
    if row.n_seeds <= 1:
        return f"{number_text(row.mean, row.kind)}{interval} (1 seed)"
    if not row.sd:
        return f"{number_text(row.mean, row.kind)}{interval} (deterministic: {row.n_seeds} equal seeds)"
    spread = number_text(row.sd, row.kind, unit=False)
    return f"{number_text(row.mean, row.kind, unit=False)} ± {spread}{unit}{interval}"


def baseline_text(row: ResultRow) -> str:
    """`majority 65.3% · chance 33.3%`: what a model that learnt nothing scores on our test set."""
    named = (("majority", row.majority), ("chance", row.chance))
    return " · ".join(f"{name} {100 * value:.1f}%" for name, value in named if value is not None) or DASH


def band_text(row: ResultRow) -> str:
    """`78.0–88.5% (sampling)`: the interval and the term that set its width."""
    if row.band is None:
        return DASH
    unit = "%" if row.kind == "proportion" else ""
    low = number_text(row.band.low, row.kind, unit=False)
    high = number_text(row.band.high, row.kind, unit=False)
    return f"{low}–{high}{unit} ({row.band.binding})"


def interval_text(row: ResultRow) -> str:
    """`57.6–100% (±5.0)`: what our runs make plausible for one more run on the paper's test size, and the
    claim's margin."""
    if row.interval is None:
        return DASH
    unit = "%" if row.kind == "proportion" else ""
    low, high = (number_text(value, row.kind, unit=False) for value in row.interval)
    margin = f" (±{number_text(row.margin, row.kind, unit=False)})" if row.margin is not None else ""
    return f"{low}–{high}{unit}{margin}"


def difference_text(row: ResultRow) -> str:
    """`7.8 points higher`, `0.241 lower`, or `equal to the paper's`; `(lower = better)` where that holds."""
    difference = row.mean - row.reported
    scale = 100.0 if row.kind == "proportion" else 1.0
    if abs(difference * scale) < (0.05 if row.kind == "proportion" else _SAME):
        text = "equal to the paper's"
    else:
        size = f"{abs(difference) * scale:.1f} points" if row.kind == "proportion" else f"{abs(difference):.3f}"
        text = f"{size} {'higher' if difference > 0 else 'lower'}"
    return text + (" (lower = better)" if row.lower_is_better else "")


def verdict_text(row: ResultRow) -> str:
    """The verdict in words, with the direction and size of the difference from the paper."""
    if row.verdict == NO_RESULT:
        return "no result yet: run the replication"
    if row.mean is None or row.reported is None:
        if row.verdict == NOT_RUN and row.judgement:
            return f"no result: {row.judgement}"
        return "not run: data missing here" if row.verdict == NOT_RUN else row.verdict
    if row.verdict == NOT_RUN:  # run, but without what the claim needs (its metadata's `needs`)
        return f"not run: {row.judgement or 'this run is no test of it'}"
    difference = difference_text(row)
    if row.verdict == REPRODUCED:
        return f"reproduced: ours {difference}"
    if row.verdict in (BELOW, ABOVE):
        return f"not reproduced: ours {difference}"
    if row.verdict == INCONCLUSIVE:
        return f"inconclusive: ours {difference}, too uncertain to tell"
    if row.verdict == PROXY:
        return f"proxy data, no verdict: ours {difference}, {row.position or 'outside'} the band"
    return row.verdict


_CLAIM_WORDS = {"at_least": ", claimed at least", "at_most": ", claimed at most", "about": ""}


def claim_text(row: ResultRow) -> str:
    """`recall of anger (random split)`: the metric and the setting in words, and whether the paper claims a
    threshold or this is the other reading of an ambiguous sentence."""
    text = f"{metric_words(row.metric)} ({row.setting.replace('_', ' ')}){_CLAIM_WORDS.get(row.claim, '')}"
    return text + (", other reading" if row.reading == "alternative" else "")


def metric_words(metric: str) -> str:
    head, _, tail = metric.partition("/")
    if head == "confusion" and "->" in tail:
        true_name, predicted = tail.split("->", 1)
        return f"{true_name} predicted as {predicted}"
    words = head.replace("_", " ")
    return f"{words} of {tail.replace('_', ' ')}" if tail else words


def where_short(where: str) -> str:
    """The paper's place without the quotation: `Section 3.2: 57% of ...` -> `Section 3.2`."""
    cut = min((i for i in (where.find(":"), where.find(" (")) if i > 0), default=len(where))
    return where[:cut].strip()


def paper_label(meta: ReplicationMetadata) -> str:
    """`Chen (2024)`, `Hong et al. (2023)`."""
    surname = meta.authors[0].split()[-1] if meta.authors[0].split()[-1] != "al." else meta.authors[0]
    others = " et al." if len(meta.authors) > 1 else ""
    return f"{surname}{others} ({meta.year})"


OUTCOMES = (REPRODUCED, "not reproduced", INCONCLUSIVE)


def outcome(row: ResultRow) -> str:
    """The verdict as one of the three outcomes (below and above are both *not reproduced*), else itself."""
    return "not reproduced" if row.verdict in (BELOW, ABOVE) else row.verdict


def outcome_counts(paper: PaperResult) -> Counter:
    """Each claim counted once, by its primary reading (another reading of a sentence is shown, not counted);
    rows that check parts of one statement (`statement` in the metadata) count as one claim together."""
    parts: dict[object, list[str]] = {}
    for index, (figure, row) in enumerate(zip(paper.meta.reported, paper.claims, strict=True)):
        if row.reading == "primary":
            parts.setdefault(figure.statement or index, []).append(outcome(row))
    return Counter(statement_outcome(outcomes) for outcomes in parts.values())


def statement_outcome(parts: list[str]) -> str:
    """One statement's outcome from its parts': not reproduced if any part is, reproduced only if all are, not
    run (or proxy) if no part was tested, else inconclusive."""
    tested = [part for part in parts if part in OUTCOMES]
    if not tested:
        return parts[0]
    if "not reproduced" in tested:
        return "not reproduced"
    return REPRODUCED if tested == parts and set(tested) == {REPRODUCED} else INCONCLUSIVE


def summary_text(paper: PaperResult) -> str:
    """`1 reproduced, 3 not reproduced, 4 inconclusive of 8 claims`, `6 claims on proxy data (no verdict)`,
    `not run: data missing`."""
    claims = paper.claims
    if paper.record is None:
        return f"no record yet: run `make replicate-{paper.meta.id}`"
    if not paper.meta.reported:
        return "our own model, not a replication: no paper claims to check"
    counts = Counter(row.verdict for row in claims)
    if counts[NOT_RUN] == len(claims):
        return f"not run: {paper.meta.dataset.name} data missing here ({len(claims)} claims unchecked)"
    if counts[PROXY]:
        inside = sum(row.verdict == PROXY and row.position == "inside" for row in claims)
        return f"{counts[PROXY]} claims run on proxy data, no verdict ({inside} inside the paper's band)"
    primary = outcome_counts(paper)
    total = sum(primary.values())
    noun = "claim" if total == 1 else "claims"
    parts = ", ".join(f"{primary[name]} {name}" for name in OUTCOMES) + (
        f", {primary[NOT_RUN]} not run" if primary[NOT_RUN] else ""
    )
    others = sum(row.reading != "primary" for row in claims)
    alternative = f" (and {others} other reading{'s' if others != 1 else ''} of ambiguous sentences)" if others else ""
    shared = Counter(
        figure.statement
        for figure, row in zip(paper.meta.reported, claims, strict=True)
        if figure.statement and row.reading == "primary"
    )
    parted = {name: count for name, count in shared.items() if count > 1}
    grouped = f"; {sum(parted.values())} rows check parts of {len(parted)} of them" if parted else ""
    return f"{parts} of {total} {noun}{alternative}{grouped}"


def one_paragraph(text: str) -> str:
    """Text as one line (a blockquote or table cell ends at a blank line)."""
    return " ".join(text.split())


def stale_text(paper: PaperResult) -> str:
    return f"{', '.join(paper.stale)} since the record" if paper.stale else ""
