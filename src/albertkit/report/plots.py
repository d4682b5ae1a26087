"""PNG charts for run reports, drawn with matplotlib's Agg canvas (no pyplot, no global backend change)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.io.atomic import write_atomic

COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"]
SMOOTH_ABOVE = 40  # points: noisier curves than this also get a moving average


@dataclass
class Series:
    """One line of a chart: y against training step."""

    label: str
    steps: np.ndarray
    values: np.ndarray
    markers: bool = False  # sparse series (evaluations) are drawn as dots joined by a line
    smooth: bool = True  # noisy series (losses, throughput) get a moving average once they are long
    reference: bool = False  # a baseline to compare against: a thin dashed line


def plots_available() -> bool:
    """Whether matplotlib (the optional `train` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure: Any, path: Path) -> None:
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png"))


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points (shorter at the start), vectorized with a cumulative sum."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def line_chart(
    path: Path, title: str, series: list[Series], ylabel: str, log_y: bool = False, engineering: bool = False
) -> None:
    """A chart of `series` against step, written to `path` as PNG; `engineering` writes 1.2M for 1200000."""
    from matplotlib import ticker

    figure = _new_figure(6.0, 3.4)
    ax = figure.add_subplot()
    for color, line in zip(COLORS * 4, series, strict=False):
        finite = np.isfinite(line.values)
        steps, values = line.steps[finite], line.values[finite]
        if line.reference:
            ax.plot(steps, values, "--", color=color, label=line.label, linewidth=1.2)
        elif line.markers:
            ax.plot(steps, values, "o-", color=color, label=line.label, markersize=4, linewidth=1.4)
        elif line.smooth and len(values) > SMOOTH_ABOVE:
            # Raw points faint, the trend bold: per-window losses are noisy.
            ax.plot(steps, values, color=color, alpha=0.3, linewidth=0.8)
            window = max(5, len(values) // 25)
            ax.plot(steps, _moving_average(values, window), color=color, linewidth=1.8,
                    label=f"{line.label} (mean of {window})")
        else:
            ax.plot(steps, values, color=color, label=line.label, linewidth=1.6)
    if log_y:
        ax.set_yscale("log")
        # Ticks at 1, 2, 5 x 10^k written as 0.5 rather than 5x10^-1: readable on short and long ranges.
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    elif engineering:
        ax.yaxis.set_major_formatter(ticker.EngFormatter(sep=""))
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(figure, path)


def confusion_heatmap(path: Path, matrix: np.ndarray, labels: list[str], title: str) -> None:
    """Counts of (true label, predicted label), colored by the share of each true label's row."""
    k = len(labels)
    size = min(3.0 + 0.45 * k, 9.0)
    figure = _new_figure(size + 1.0, size)
    ax = figure.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, fraction=0.046, label="share of the true label")
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=11)
    if k <= 20:  # beyond that the numbers no longer fit their cells
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize=9,
                    color="white" if shares[i, j] > 0.55 else "#111827")
    _save(figure, path)


def trial_chart(path: Path, numbers: list[int], values: list[float], states: list[str], metric: str,
                maximize: bool = True) -> None:
    """A search's trials: each trial's dev metric (pruned ones where they stopped, as crosses) and the best so far."""
    figure = _new_figure(6.0, 3.4)
    ax = figure.add_subplot()
    done = [i for i, state in enumerate(states) if state == "complete"]
    pruned = [i for i, state in enumerate(states) if state != "complete"]
    ax.plot([numbers[i] for i in done], [values[i] for i in done], "o", color=COLORS[0], label="complete")
    if pruned:
        ax.plot([numbers[i] for i in pruned], [values[i] for i in pruned], "x", color=COLORS[1],
                label="pruned (last evaluation)")
    best = np.array([values[i] for i in done])
    best = np.maximum.accumulate(best) if maximize else np.minimum.accumulate(best)
    ax.step([numbers[i] for i in done], best, where="post", color=COLORS[2], label="best so far")
    ax.set_title(f"dev {metric} per trial", fontsize=11)
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(figure, path)
