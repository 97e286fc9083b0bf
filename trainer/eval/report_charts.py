"""The charts of the evaluation report, drawn with matplotlib's object API (no pyplot, so no
global figure state) and returned as ``<img>`` tags holding base64 PNG data URLs."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.vocabulary import Discipline
from trainer.eval.analysis import DIMENSIONS


def label(value: str) -> str:
    """A discipline's English name, or a value with spaces for underscores."""
    discipline = Discipline.lookup(value)
    if discipline is not None and discipline.value == value:
        return discipline.name_en
    return value.replace("_", " ")


def png_image(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{encoded}">'


def heatmaps(
    title: str,
    values: Mapping[tuple[str, str], Mapping[str, float | None]],
    disciplines: Sequence[str],
    tasks: Sequence[str],
    *,
    diverging: bool = False,
    framed: frozenset[tuple[str, str]] = frozenset(),
) -> str:
    """One row of four heatmaps (the dimensions) of ``values[(discipline, task)][dimension]``."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    columns = 2 if len(tasks) > 4 else len(DIMENSIONS)  # wide grids: two by two
    rows = len(DIMENSIONS) // columns
    width = columns * (2.2 + 0.75 * len(tasks))
    height = rows * (1.4 + 0.5 * len(disciplines))
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    present = [v for cell in values.values() for v in cell.values() if v is not None]
    if diverging:
        limit = max([0.1, *(abs(v) for v in present)])
        cmap, vmin, vmax = "RdBu", -limit, limit
    else:
        limit, cmap, vmin, vmax = 1.0, "viridis", 0.0, 1.0
    colors = colormaps[cmap].with_extremes(bad="#eeeeee")  # cells not evaluated: grey
    image: Any = None
    for ax, dimension in zip(axes, DIMENSIONS, strict=True):
        grid = np.full((len(disciplines), len(tasks)), np.nan)
        for (d, t), cell in values.items():
            if d in disciplines and t in tasks and cell.get(dimension) is not None:
                grid[disciplines.index(d), tasks.index(t)] = cell[dimension]
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=colors, vmin=vmin, vmax=vmax)
        for r in range(len(disciplines)):
            for c in range(len(tasks)):
                value = grid[r, c]
                if np.isnan(value):
                    text, color = "—", "#555555"
                elif diverging:
                    dark = abs(value) > 0.6 * limit
                    text, color = f"{value:+.2f}", "white" if dark else "#111111"
                else:
                    text, color = f"{value:.2f}", "white" if value < 0.55 else "#111111"
                ax.text(c, r, text, ha="center", va="center", fontsize=8, color=color)
                if (disciplines[r], tasks[c]) in framed:
                    ax.add_patch(
                        Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=2)
                    )
        ax.set_title(dimension, fontsize=10)
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([label(t) for t in tasks], rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(disciplines)))
        ax.set_yticklabels([label(d) for d in disciplines], fontsize=8)
    figure.colorbar(image, ax=list(axes), fraction=0.02, pad=0.01)
    figure.suptitle(title, fontsize=11)
    return png_image(figure)


def glossary_chart(title: str, rows: Sequence[Mapping[str, Any]], gain: float) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3))
    ax = figure.subplots()
    labels = [label(r["discipline"]) for r in rows]
    deltas = [r["delta"] for r in rows]
    ax.bar(labels, deltas, color=["#1a7f37" if r["injected"] else "#8c959f" for r in rows])
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(gain, color="#1a7f37", lw=0.8, ls="--")
    ax.set_ylabel("nats / token")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return png_image(figure)
