"""What the generated report shows: each replication's latest `full` record read against its metadata.

`collect_papers` joins a record's rows with the metadata entries they came from (claim, where, which way is
better, group), and the `*_text` functions put a row into words. `tables` (the headline table, CSV, TeX and
the README status) and `pages` (one page per replication) render them; neither reads a record itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .bands import ABOVE, BELOW, NOT_RUN, PROXY, REPRODUCED
from .metadata import ReplicationMetadata, list_replications, load_metadata
from .provenance import stale_reasons
from .records import latest_record

DASH = "—"
TIMING_GROUP = "timing"
# The verdict of a claim the latest record has no row for (no record yet, or a claim added since).
NO_RESULT = "no result"
# A difference smaller than this (in the row's unit) reads as "the same as reported".
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
    band: dict | None
    verdict: str
    position: str | None
    note: str

    @property
    def is_claim(self) -> bool:
        return self.group is None

    @property
    def lower_is_better(self) -> bool:
        return self.better == "lower"


@dataclass(frozen=True)
class PaperResult:
    """A replication's metadata, its latest full record (None: not run yet) and the rows to show."""

    meta: ReplicationMetadata
    record: dict | None
    rows: list[ResultRow]
    stale: list[str]

    @property
    def claims(self) -> list[ResultRow]:
        return [row for row in self.rows if row.is_claim]

    @property
    def beyond_paper(self) -> list[ResultRow]:
        return [row for row in self.rows if not row.is_claim]

    @property
    def record_name(self) -> str:
        return Path(self.record["_path"]).name if self.record else ""

    @property
    def seeds(self) -> int:
        return max((row.n_seeds for row in self.rows), default=0)


def _row(entry: dict, *, group: str | None, better: str | None, where: str = "") -> ResultRow:
    """A ResultRow from a record row and what the metadata says about it."""
    ci = entry.get("ci")
    return ResultRow(
        metric=entry["metric"],
        setting=entry["setting"],
        kind=entry.get("kind", "proportion"),
        group=group,
        better=better,
        reported=entry.get("reported"),
        n_test=entry.get("n_test"),
        where=where,
        mean=entry.get("mean"),
        sd=entry.get("sd"),
        n_seeds=sum(value is not None for value in entry.get("values", [])),
        ci=tuple(ci) if ci else None,
        band=entry.get("band"),
        verdict=entry.get("verdict", NOT_RUN),
        position=entry.get("position"),
        note=entry.get("note") or "",
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
    )


def paper_result(meta: ReplicationMetadata, record: dict | None) -> PaperResult:
    """Rows in metadata order: every claim (even one the record lacks), then the beyond-paper rows it has."""
    if record is None:
        claims = [_claim_without_result(meta, i) for i in range(len(meta.reported))]
        return PaperResult(meta, None, claims, [])
    by_key = {(row["metric"], row["setting"]): row for row in record["rows"]}
    rows = []
    for i, figure in enumerate(meta.reported):
        entry = by_key.get((figure.metric, figure.setting))
        if entry is None:
            rows.append(_claim_without_result(meta, i))
            continue
        # The metadata's place in the paper, not the record's: it may have been corrected since.
        rows.append(_row(entry, group=None, better=figure.better, where=figure.where))
    for extra in meta.beyond_paper:
        entry = by_key.get((extra.metric, extra.setting))
        if entry is not None:
            rows.append(_row(entry, group=extra.group, better=None))
    return PaperResult(meta, record, rows, stale_reasons(meta, record))


def collect_papers(results_dir: Path | None = None, root: Path | None = None) -> list[PaperResult]:
    """Every replication (sorted by id) with its latest full record."""
    papers = []
    for replication_id in list_replications(root):
        meta = load_metadata(replication_id, root)
        papers.append(paper_result(meta, latest_record(replication_id, "full", results_dir)))
    return papers


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


def band_text(row: ResultRow) -> str:
    """`78.0–88.5% (sampling)`: the interval and the term that set its width."""
    if row.band is None:
        return DASH
    unit = "%" if row.kind == "proportion" else ""
    low = number_text(row.band["low"], row.kind, unit=False)
    high = number_text(row.band["high"], row.kind, unit=False)
    return f"{low}–{high}{unit} ({row.band['binding']})"


def difference_text(row: ResultRow) -> str:
    """`7.8 points higher`, `0.241 lower`, or `same as reported`; `(lower = better)` where that holds."""
    difference = row.mean - row.reported
    scale = 100.0 if row.kind == "proportion" else 1.0
    if abs(difference * scale) < (0.05 if row.kind == "proportion" else _SAME):
        text = "same as reported"
    else:
        size = f"{abs(difference) * scale:.1f} points" if row.kind == "proportion" else f"{abs(difference):.3f}"
        text = f"{size} {'higher' if difference > 0 else 'lower'}"
    return text + (" (lower = better)" if row.lower_is_better else "")


def verdict_text(row: ResultRow) -> str:
    """The verdict in words, with the direction and size of the difference from the paper."""
    if row.verdict == NO_RESULT:
        return "no result yet: run the replication"
    if row.mean is None or row.reported is None:
        return "not run: data missing here" if row.verdict == NOT_RUN else row.verdict
    difference = difference_text(row)
    if row.verdict == REPRODUCED:
        return f"reproduced ({difference})"
    if row.verdict in (BELOW, ABOVE):
        return f"not reproduced: ours {difference}"
    if row.verdict == PROXY:
        return f"proxy data, no verdict: ours {difference}, {row.position or 'outside'} the band"
    return row.verdict


def claim_text(row: ResultRow) -> str:
    """`recall of anger (random split)`: the metric and the setting in words."""
    return f"{metric_words(row.metric)} ({row.setting.replace('_', ' ')})"


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


def summary_text(paper: PaperResult) -> str:
    """`1 of 5 claims reproduced`, `6 claims on proxy data (no verdict)`, `not run: data missing`."""
    claims = paper.claims
    if paper.record is None:
        return f"no record yet: run `make replicate-{paper.meta.id}`"
    counts = Counter(row.verdict for row in claims)
    if counts[NOT_RUN] == len(claims):
        return f"not run: {paper.meta.dataset.name} data missing here ({len(claims)} claims unchecked)"
    if counts[PROXY]:
        inside = sum(row.verdict == PROXY and row.position == "inside" for row in claims)
        return f"{counts[PROXY]} claims run on proxy data, no verdict ({inside} inside the paper's band)"
    noun = "claim" if len(claims) == 1 else "claims"
    return f"{counts[REPRODUCED]} of {len(claims)} {noun} reproduced"


def one_paragraph(text: str) -> str:
    """Text as one line (a blockquote or table cell ends at a blank line)."""
    return " ".join(text.split())


def stale_text(paper: PaperResult) -> str:
    return f"{', '.join(paper.stale)} since the record" if paper.stale else ""
