"""The generated report: results/TABLE.{md,csv,tex} (one row per paper claim), one page per replication
(`pages`), results/audits.md (the latest duplicate audit, cross-dataset matrix and face-detector benchmark)
and the status table of the repository README, all from the latest records and metadata.

Reads only JSON records and metadata (no TensorFlow), so it runs in seconds. The output depends on
nothing but those files (no generation time), so regenerating unchanged inputs gives identical files, and
`checks.check_generated_files` can compare the committed files with what they should be.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from . import measurement_pages, paths
from .atomic import write_text_atomically
from .bands import NOT_RUN, PROXY
from .claims_figure import FIGURE_NAME, HYPOTHESES_FIGURE_NAME, claims_svg, hypotheses_svg, plotted_claims
from .cpu_kinds import cpu_kinds_markdown
from .measurement_formats import FIGURE_FILE
from .metadata import ReplicationMetadata
from .model_card import REFERENCE_MODEL, shipped_cards
from .pages import AUDITS_PAGE, HOW_TO_READ_VERDICT, PAGE_NAME, RESULT_COLUMNS, md_table, render_page
from .paired import paired_against_model
from .per_image import decode_correct
from .report import (
    DASH,
    EXPLANATIONS_HEADING,
    OUTCOMES,
    Measurements,
    PaperResult,
    ResultRow,
    baseline_text,
    claim_text,
    collect_papers,
    collect_recipes,
    heading_anchor,
    hypotheses_text,
    interval_text,
    latest_measurements,
    number_text,
    one_paragraph,
    ours_text,
    outcome_counts,
    paper_label,
    summary_text,
    verdict_link,
    verdict_text,
    where_short,
)

STATUS_START = "<!-- status:start -->"
STATUS_END = "<!-- status:end -->"
README_NAME = "README.md"

CSV_COLUMNS = (
    "paper",
    "setting",
    "metric",
    "claim",
    "where",
    "reported",
    "ours",
    "majority",
    "chance",
    "n_test",
    "one_more_run",
    "verdict",
    "why",
    "better",
    "seeds",
    "data",
    "record",
    "commit",
    "date",
    "stale",
    "stale_reason",
    "reported_value",
    "mean",
    "sd",
    "ci_low",
    "ci_high",
    "interval_low",
    "interval_high",
    "margin",
    "band_low",
    "band_high",
    "binding",
)


def _page_link(paper: PaperResult, prefix: str = "") -> str:
    return f"{prefix}{paper.meta.id}/{PAGE_NAME}"


# --- the headline table ---------------------------------------------------------------------------------


def _outcome_table(papers: list[PaperResult]) -> list[str]:
    """Per paper, its claims in the three outcomes (primary readings, each claim once), then proxy and not run."""
    columns = [*OUTCOMES, PROXY, NOT_RUN]
    rows = []
    for paper in papers:
        counts = outcome_counts(paper)
        if paper.record is None:
            counts = {NOT_RUN: sum(row.reading == "primary" for row in paper.claims)}
        rows.append([f"[{paper_label(paper.meta)}]({_page_link(paper)})", *(str(counts.get(c, 0)) for c in columns)])
    return [*md_table(["paper", *columns], rows), ""] if rows else []


def _summary_line(paper: PaperResult) -> str:
    stale = " · *stale*" if paper.stale else ""
    data = f", {paper.record.data if paper.record else paper.meta.dataset.data} data"
    line = f"- **{paper_label(paper.meta)}** ([page]({_page_link(paper)}){data}): {summary_text(paper)}"
    return line + _gaps_text(paper) + stale


def _gaps_text(paper: PaperResult, prefix: str = "", *, names: bool = True) -> str:
    """`; [what could explain the gaps](<page>#...): 3 of 7 hypotheses computed; ...`, or "" without any."""
    searched = hypotheses_text(paper, names=names)
    if not searched:
        return ""
    section = f"{_page_link(paper, prefix)}#{heading_anchor(EXPLANATIONS_HEADING)}"
    return f"; [what could explain the gaps]({section}): {searched}"


def _claim_cells(paper: PaperResult, row: ResultRow, *, links: bool = False) -> list[str]:
    """The headline row of a claim; with `links`, a verdict that has hypotheses links to them (markdown)."""
    label = paper_label(paper.meta) + (" *stale*" if paper.stale else "")
    verdict = verdict_link(paper, row, _page_link(paper)) if links else verdict_text(row)
    return [
        label,
        claim_text(row),
        where_short(row.where),
        number_text(row.reported, row.kind),
        ours_text(row),
        baseline_text(row),
        str(row.n_test or DASH),
        interval_text(row),
        verdict,
    ]


def _reference_cell(recipe: PaperResult, cross_dataset: dict | None) -> dict | None:
    """The `fer` package's cell of the cross-dataset record on the test set of the recipe's own dataset."""
    if not cross_dataset:
        return None
    own = (entry["label"] for entry in cross_dataset["test_sets"] if entry["dataset"] == recipe.meta.dataset.name)
    label = next(own, None)
    cells = cross_dataset["cells"]
    scored = (cell for cell in cells if cell["model"] == REFERENCE_MODEL and cell["status"] == "scored")
    return next((cell for cell in scored if cell["test_set"] == label), None)


def _against_reference(row: ResultRow, reference: dict) -> str:
    """Whether the two 95% intervals are apart: the only comparison the two numbers support."""
    low, high = reference["accuracy_ci"]
    if row.ci is None:
        return ""
    if row.ci[0] > high:
        return "above the `fer` package's interval"
    if row.ci[1] < low:
        return "below the `fer` package's interval"
    return "overlaps the `fer` package's interval"


def _recipe_line(recipe: PaperResult, cross_dataset: dict | None) -> str:
    """One recipe's headline: its accuracy rows of its first group (its test set, every setting), beside the
    `fer` package on the same images."""
    head = f"- **{recipe.meta.id}** ([page]({_page_link(recipe)})): "
    if recipe.record is None:
        return head + summary_text(recipe)
    first_group = recipe.beyond_paper[0].group if recipe.beyond_paper else None
    rows = [row for row in recipe.beyond_paper if row.group == first_group and row.metric == "accuracy"]
    reference = _reference_cell(recipe, cross_dataset)
    parts = []
    for row in rows:
        seeds = f" ({row.n_seeds} seeds)" if row.n_seeds > 1 else ""  # ours_text says "1 seed" itself
        versus = _against_reference(row, reference) if reference else ""
        parts.append(f"`{row.setting}` {ours_text(row)}{seeds}" + (f", {versus}" if versus else ""))
    test_set = reference["test_set"] if reference else recipe.meta.dataset.name
    text = head + f"accuracy on {test_set}: {'; '.join(parts)}"
    if reference:
        low, high = reference["accuracy_ci"]
        text += (
            f". The `fer` package on the same {reference['n']:,} images (cross-dataset record): "
            f"{number_text(reference['accuracy'], 'proportion')} [{number_text(low, 'proportion', unit=False)}, "
            f"{number_text(high, 'proportion', unit=False)}]"
        )
        if rows:
            text += _paired_with_reference_text(recipe, rows[0].setting, reference)
    note = next((row.note for row in rows if row.note), "")
    return text + (f". {note[0].upper()}{note[1:]}" if note else "") + (" · *stale*" if recipe.stale else "")


def _paired_with_reference_text(recipe: PaperResult, setting: str, reference: dict) -> str:
    """`; paired with it on the same images, seed by seed: ...` for the recipe's setting, from the record's
    per-image predictions and the `fer` package's per-image results; "" where either lacks them."""
    if not reference.get("per_image"):
        return ""
    scored, right = decode_correct(reference["per_image"])
    if not scored.all():  # the images the reference skipped would shift the pairing
        return ""
    paired = paired_against_model(recipe.record.seeds_of(setting), right)
    if not paired:
        return ""
    seeds = "; ".join(
        f"seed {seed} {result.difference_text()}, p={result.p_value:.2g}" for seed, result in paired.items()
    )
    return f"; `{setting}` minus the `fer` package, paired on the same images (McNemar), seed by seed: {seeds}"


def _recipes_section(recipes: list[PaperResult], cross_dataset: dict | None) -> list[str]:
    if not recipes:
        return []
    intro = (
        "Models of our own for `predict` and `demo`, trained and reported like the replications (chosen on "
        "a validation set, scored once on the test set), with no paper to check them against."
    )
    lines = [_recipe_line(recipe, cross_dataset) for recipe in recipes]
    return ["## Our own models (not replications)", "", intro, "", *lines, ""]


def render_markdown(
    papers: list[PaperResult], recipes: list[PaperResult] = (), cross_dataset: dict | None = None
) -> str:
    lines = [
        "# Replication results",
        "",
        "Generated by `fer-replicate tables` from the latest `full` record of each replication and its metadata;",
        "do not edit by hand.",
        "",
        *_outcome_table(papers),
        *(_summary_line(paper) for paper in papers),
        "",
    ]
    if plotted_claims(papers):
        lines += [
            f"![Each claim that is a percentage: the paper's value (black tick, thin ticks its margin), what our runs "
            f"make plausible for one more run (grey), ours (dot, 95% interval): green reproduced, red not reproduced, "
            f"orange inconclusive, blue on proxy data]({FIGURE_NAME})",
            "",
        ]
    header = ["paper", "claim", "where", "reported", *RESULT_COLUMNS]
    rows = [_claim_cells(paper, row, links=True) for paper in papers for row in paper.claims]
    lines += [*md_table(header, rows), ""]
    for paper in papers:
        if paper.record and paper.record.missing:
            # The metadata says what to supply; the loader's own message (with it on the page) would repeat it.
            what_to_supply = paper.meta.missing or paper.record.missing
            lines += [f"**Not run: {paper_label(paper.meta)}.** {one_paragraph(what_to_supply)}", ""]
    lines += _recipes_section(list(recipes), cross_dataset)
    lines.append(HOW_TO_READ_VERDICT if papers else "No replications found.")
    lines += ["", AUDITS_LINK]
    return "\n".join(lines).rstrip() + "\n"


# --- the audits page -----------------------------------------------------------------------------------

AUDITS_LINK = (
    f"Beyond the papers: [data audits and measurements]({AUDITS_PAGE}) (FER2013 duplicates across its splits, "
    "every model on the other datasets, face detectors side by side, how far the CPU kind moves a run)."
)


def render_audits(measurements: Measurements, results_dir: Path, metas: Sequence[ReplicationMetadata] = ()) -> str:
    """results/audits.md: one section per measurement, from its latest record, each naming its command, then
    how far the CPU kind moves the replications' numbers."""
    sections = [
        _duplicate_audit_section(measurements.duplicate_audit, results_dir),
        _cross_dataset_section(measurements.cross_dataset, results_dir),
        _detector_section(measurements.detector_bench, results_dir),
        cpu_kinds_markdown(metas, results_dir),
    ]
    lines = [
        "# Data audits and measurements",
        "",
        "Generated by `fer-replicate tables` from the latest record of each; do not edit by hand. Back to "
        "[all results](TABLE.md).",
        "",
    ]
    return "\n".join([*lines, *(line for section in sections for line in section)]).rstrip() + "\n"


def _relative(path: Path, results_dir: Path) -> str:
    return path.relative_to(results_dir).as_posix()


def _made_with(record: dict, results_dir: Path, command: str) -> str:
    provenance = record["provenance"]
    name = _relative(Path(record["_path"]), results_dir)
    return (
        f"*From [`{name}`]({name}) (commit `{str(provenance.get('git_commit'))[:7]}`, "
        f"{provenance['created_utc'][:10]}); regenerate with `{command}`.*"
    )


def _image(path: Path, results_dir: Path, text: str) -> list[str]:
    return [f"![{text}]({_relative(path, results_dir)})", ""] if path.is_file() else []


def _not_made(title: str, command: str) -> list[str]:
    return [f"## {title}", "", f"Not made yet: `{command}`.", ""]


def _duplicate_audit_section(record: dict | None, results_dir: Path) -> list[str]:
    command = "make audit-duplicates"
    if record is None:
        return _not_made("FER2013 duplicates", command)
    figure = _image(Path(record["_path"]).with_suffix(".png"), results_dir, "sample near-duplicate pairs")
    text = measurement_pages.audit_markdown(record).rstrip().splitlines()
    return [*text, "", *figure, _made_with(record, results_dir, command), ""]


def _cross_dataset_section(record: dict | None, results_dir: Path) -> list[str]:
    command = "make cross-dataset"
    if record is None:
        return _not_made("Cross-dataset accuracy", command)
    heading, *body = measurement_pages.cross_dataset_markdown(record).rstrip().splitlines()
    heat_map = _image(Path(record["_path"]).with_name(FIGURE_FILE), results_dir, "cross-dataset accuracy")
    return [heading, "", *heat_map, *body[1:], "", _made_with(record, results_dir, command), ""]


def _detector_section(record: dict | None, results_dir: Path) -> list[str]:
    command = "make bench-detectors"
    if record is None:
        return _not_made("Face detectors", command)
    intro = (
        f"Per detector and set: faces found (a hit overlaps the true face box with IoU ≥ "
        f"{record['protocol']['iou_hit']:g}), false positives in parentheses, and frames per second."
    )
    table = ["```text", measurement_pages.format_detector_bench(record), "```"]
    return ["## Face detectors", "", intro, "", *table, "", _made_with(record, results_dir, command), ""]


def _csv_row(paper: PaperResult, row: ResultRow) -> dict:
    provenance = paper.record.provenance if paper.record else None
    band = row.band
    return {
        "paper": paper.meta.id,
        "setting": row.setting,
        "metric": row.metric,
        "claim": claim_text(row),
        "where": row.where,
        "reported": number_text(row.reported, row.kind),
        "ours": ours_text(row),
        "majority": row.majority,
        "chance": row.chance,
        "n_test": row.n_test,
        "one_more_run": interval_text(row),
        "verdict": verdict_text(row),
        "why": row.judgement,
        "better": row.better or ("higher" if row.kind == "proportion" else ""),
        "seeds": row.n_seeds,
        "data": paper.record.data if paper.record else "",
        "record": paper.record_name,
        "commit": provenance.git_commit[:7] if provenance else "",
        "date": provenance.created_utc[:10] if provenance else "",
        "stale": "yes" if paper.stale else "no",
        "stale_reason": ", ".join(paper.stale),
        "reported_value": row.reported,
        "mean": row.mean,
        "sd": row.sd,
        "ci_low": row.ci[0] if row.ci else None,
        "ci_high": row.ci[1] if row.ci else None,
        "interval_low": row.interval[0] if row.interval else None,
        "interval_high": row.interval[1] if row.interval else None,
        "margin": row.margin,
        "band_low": band.low if band else None,
        "band_high": band.high if band else None,
        "binding": band.binding if band else "",
    }


def render_csv(papers: list[PaperResult]) -> str:
    """The headline table's rows with their raw numbers, for other tools."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for paper in papers:
        for row in paper.claims:
            writer.writerow({key: "" if value is None else value for key, value in _csv_row(paper, row).items()})
    return buffer.getvalue()


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    ">": r"\textgreater{}",
    "<": r"\textless{}",
    "`": "",
    "*": "",
    "±": r"$\pm$",
    "–": "--",
    "—": "---",
}


def _tex(value: object) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(value))


def render_latex(papers: list[PaperResult]) -> str:
    header = ["Paper", "Claim", "Where", "Reported", "Ours (mean ± sd [95% CI])", "n_test", "Band", "Verdict"]
    lines = [
        "% Generated by fer_common.tables; needs \\usepackage{booktabs}.",
        "\\begin{tabular}{" + "l" * len(header) + "}",
        "\\toprule",
        " & ".join(_tex(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    for paper in papers:
        lines += [" & ".join(_tex(cell) for cell in _claim_cells(paper, row)) + " \\\\" for row in paper.claims]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


# --- the README status table ----------------------------------------------------------------------------


def _status(paper: PaperResult) -> str:
    if paper.record is None:
        return summary_text(paper)
    prefix = "" if paper.record.missing else "full run recorded: "
    gaps = _gaps_text(paper, "results/", names=False)
    return prefix + summary_text(paper) + gaps + (" (stale)" if paper.stale else "")


def render_status(papers: list[PaperResult]) -> str:
    """The README's `| replication | paper | dataset | status |` table."""
    rows = []
    for paper in papers:
        meta = paper.meta
        dataset = meta.dataset.name + (" (proxy)" if meta.dataset.data == "proxy" else "")
        rows.append(
            [
                f"[`{meta.id}`]({_page_link(paper, 'results/')})",
                f"{paper_label(meta)}, *{meta.title}*",
                dataset,
                _status(paper),
            ]
        )
    return "\n".join(md_table(["replication", "paper", "dataset", "status"], rows)) + "\n"


def with_status(readme: str, status_table: str) -> str:
    """The README text with the table between the status markers replaced; ValueError without the markers."""
    start, end = readme.find(STATUS_START), readme.find(STATUS_END)
    if start < 0 or end < start:
        raise ValueError(f"the README needs the markers {STATUS_START} and {STATUS_END} around its status table")
    return readme[: start + len(STATUS_START)] + "\n" + status_table + readme[end:]


# --- files ----------------------------------------------------------------------------------------------


def readme_path(results_dir: Path) -> Path:
    """The README whose status table the results fill in: the one beside the results folder."""
    return results_dir.parent / README_NAME


def generated_files(results_dir: Path | None = None, *, root: Path | None = None) -> dict[Path, str]:
    """Every generated file and its content: the tables, one page per replication and, where the README
    beside the results folder has the status markers, that README with its status table filled in (a
    results folder elsewhere, FER_RESULTS_DIR, leaves an unrelated README alone)."""
    out = Path(results_dir or paths.results_dir())
    papers = collect_papers(out, root)
    recipes = collect_recipes(out, root)
    measurements = latest_measurements(out)
    files = {
        out / "TABLE.md": render_markdown(papers, recipes, measurements.cross_dataset),
        out / "TABLE.csv": render_csv(papers),
        out / "TABLE.tex": render_latex(papers),
    }
    figure = claims_svg(papers)
    if figure is not None:
        files[out / FIGURE_NAME] = figure
    files.update({out / paper.meta.id / PAGE_NAME: render_page(paper) for paper in [*papers, *recipes]})
    for paper in papers:
        hypotheses_figure = hypotheses_svg(paper)
        if hypotheses_figure is not None:
            files[out / paper.meta.id / HYPOTHESES_FIGURE_NAME] = hypotheses_figure
    files[out / AUDITS_PAGE] = render_audits(measurements, out, [paper.meta for paper in papers])
    # The shipped models' cards, where the results folder is the repository's (beside the package).
    shipped_dir = out.parent / "fer_common" / "pretrained"
    if shipped_dir.is_dir():
        files.update(shipped_cards(shipped_dir, out, measurements))
    readme = readme_path(out)
    if readme.is_file() and STATUS_START in readme.read_text(encoding="utf-8"):
        files[readme] = with_status(readme.read_text(encoding="utf-8"), render_status(papers))
    return files


def write_tables(results_dir: Path | None = None, *, root: Path | None = None) -> list[Path]:
    """Write every generated file (see `generated_files`); returns their paths (what `fer-replicate tables`
    prints). Files whose content is already right are left untouched."""
    written = []
    for path, text in generated_files(results_dir, root=root).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text_atomically(path, text)
        written.append(path)
    return written
