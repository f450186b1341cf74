"""The figures of claims against their bands: the headline figure (every paper claim that is a proportion,
ours against the paper's value and band) and each page's hypotheses figure (what each hypothesis gives for
each claim that does not reproduce).

Headline figure, one row per claim: what our runs make plausible for one more run (the verdict rule's 95%
interval, `verdicts`) as a grey bar, the paper's value as a black tick with its margin as thin ticks, ours as
a dot (mean over seeds) with its 95% confidence interval, coloured by verdict. A reader sees at once which
claims hold, which our runs cannot tell, and how far the others miss. The hypotheses figure reads each
hypothesis against the claim's paper band. The figure is SVG text, generated with the tables and checked like
them, so it carries no date and its element ids come from a fixed salt: the same records give the same bytes.
"""

from __future__ import annotations

import io
import textwrap

from .bands import ABOVE, BELOW, PROXY, REPRODUCED
from .report import PaperResult, ResultRow, claim_text, hypotheses_by_row, inside_band_text, paper_label
from .verdicts import INCONCLUSIVE

FIGURE_NAME = "claims.svg"
HYPOTHESES_FIGURE_NAME = "hypotheses.svg"  # on each replication's page, beside its README
_COLOURS = {
    REPRODUCED: "#1a9850",
    BELOW: "#d73027",
    ABOVE: "#d73027",
    INCONCLUSIVE: "#f39c12",
    PROXY: "#4575b4",
}
_INSIDE, _OUTSIDE = _COLOURS[REPRODUCED], _COLOURS[BELOW]  # a hypothesis's value inside its claim's band or not
_VERDICT_WORDS = {
    REPRODUCED: "reproduced",
    BELOW: "not reproduced",
    INCONCLUSIVE: "inconclusive",
    PROXY: "proxy data: no verdict",
}


# Fixed element ids and no date: the same records give the same bytes.
_SVG_STYLE = {"svg.hashsalt": "fer-replicate", "svg.fonttype": "path", "font.size": 8}


def _svg_text(figure) -> str:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


def plotted_claims(papers: list[PaperResult]) -> list[tuple[PaperResult, ResultRow]]:
    """The claims the figure shows: proportions with a result, a band and a verdict (values such as a loss
    or an epoch count have scales of their own and stay in the table)."""
    return [
        (paper, row)
        for paper in papers
        for row in paper.claims
        if row.kind == "proportion" and row.mean is not None and row.band is not None and row.verdict in _COLOURS
    ]


def claims_svg(papers: list[PaperResult]) -> str | None:
    """The figure as SVG text; None when no claim can be plotted (no records yet)."""
    claims = plotted_claims(papers)
    if not claims:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(_SVG_STYLE):
        figure, axes = plt.subplots(figsize=(8.0, 1.0 + 0.24 * len(claims)))
        for position, (_, row) in enumerate(claims):
            _draw_claim(axes, position, row)
        axes.set_yticks(range(len(claims)), [_label(paper, row) for paper, row in claims])
        axes.set_ylim(len(claims) - 0.5, -0.5)
        axes.set_xlim(0, 100)
        axes.set_xlabel("percent")
        axes.grid(axis="x", color="#dddddd", linewidth=0.5)
        axes.set_axisbelow(True)
        axes.legend(handles=_legend_handles(), loc="lower center", bbox_to_anchor=(0.4, 1.0), ncol=3, frameon=False)
        return _svg_text(figure)


def _draw_claim(axes, position: int, row: ResultRow) -> None:
    low, high = (100 * value for value in (row.interval or (row.band.low, row.band.high)))
    axes.barh(position, high - low, left=low, height=0.6, color="#e0e0e0", edgecolor="none")
    axes.plot([100 * row.reported] * 2, [position - 0.3, position + 0.3], color="black", linewidth=1.2)
    if row.margin is not None:
        for edge in (row.reported - row.margin, row.reported + row.margin):
            axes.plot([100 * edge] * 2, [position - 0.2, position + 0.2], color="black", linewidth=0.5)
    colour = _COLOURS[row.verdict]
    if row.ci:
        axes.plot([100 * row.ci[0], 100 * row.ci[1]], [position] * 2, color=colour, linewidth=1)
    axes.plot(100 * row.mean, position, "o", color=colour, markersize=4)


def _label(paper: PaperResult, row: ResultRow) -> str:
    author = paper_label(paper.meta).split(" (")[0]
    return f"{author}: {claim_text(row)}"


def _legend_handles() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    dots = [
        Line2D([], [], marker="o", linestyle="-", color=_COLOURS[verdict], markersize=4, label=f"ours: {words}")
        for verdict, words in _VERDICT_WORDS.items()
    ]
    return [
        Patch(color="#e0e0e0", label="ours: one more run (95%)"),
        Line2D([], [], color="black", linewidth=1.2, label="paper ± margin"),
        *dots,
    ]


def has_hypotheses_figure(paper: PaperResult) -> bool:
    """Whether the page gets a hypotheses figure: a claim that does not reproduce has a computed hypothesis."""
    return any(
        entry.row is not None and entry.row.mean is not None
        for by_column in hypotheses_by_row(paper).values()
        for entry in by_column.values()
    )


def hypotheses_svg(paper: PaperResult) -> str | None:
    """One panel per claim that does not reproduce (its band grey, the paper's value a black line), one row per
    hypothesis: its mean over seeds ± sd, green inside the band, red outside; the first row is the run as made."""
    if not has_hypotheses_figure(paper):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hypotheses = hypotheses_by_row(paper)
    labels = ["as run", *(measure or profile for _, profile, measure in hypotheses)]
    claims = [explained.claim for explained in paper.explained]
    with matplotlib.rc_context(_SVG_STYLE):
        figure, panels = plt.subplots(
            1, len(claims), sharey=True, squeeze=False, figsize=(1.0 + 2.3 * len(claims), 1.2 + 0.3 * len(labels))
        )
        for column, (axes, claim) in enumerate(zip(panels[0], claims, strict=True)):
            given = (by_column[column].row if column in by_column else None for by_column in hypotheses.values())
            rows = [claim, *given]  # the run as made, then what each hypothesis gives for this claim
            scale = 100 if claim.kind == "proportion" else 1
            axes.axvspan(scale * claim.band.low, scale * claim.band.high, color="#e0e0e0", linewidth=0)
            axes.axvline(scale * claim.reported, color="black", linewidth=1.2)
            for position, row in enumerate(rows):
                if row is None or row.mean is None:
                    continue
                colour = _INSIDE if inside_band_text(claim, row) == "inside" else _OUTSIDE
                spread = scale * row.sd if row.n_seeds > 1 and row.sd else 0
                axes.errorbar(scale * row.mean, position, xerr=spread, fmt="o", color=colour, markersize=4)
            axes.set_title(textwrap.fill(claim_text(claim), 30), fontsize=7)
            axes.set_xlabel("percent" if scale == 100 else "value")
            axes.grid(axis="x", color="#dddddd", linewidth=0.5)
            axes.set_axisbelow(True)
        panels[0][0].set_yticks(range(len(labels)), labels)
        panels[0][0].set_ylim(len(labels) - 0.5, -0.5)
        return _svg_text(figure)
