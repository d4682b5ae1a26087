"""A 2-D map of embeddings as one self-contained HTML file: an SVG scatter (no script, no CDN) where hovering a
point shows its text, colored by cluster, with a legend of each cluster's size and terms."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from albertkit.io.atomic import write_text_atomic

# Twenty distinguishable colors (Tableau's); clusters beyond them reuse the palette.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#393b79"]
NOISE_COLOR = "#c8c8c8"
MAX_POINTS = 20_000  # points drawn: beyond this a seeded sample keeps the page light
HOVER_CHARS = 300  # characters of a text shown on hover
WIDTH, HEIGHT, MARGIN = 900, 620, 16


def project_2d(vectors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, 2) coordinates and the method: UMAP (cosine) when umap-learn is installed, else PCA."""
    if len(vectors) < 3:  # too few points for either: place them on a line
        return np.column_stack([np.arange(len(vectors), dtype=float), np.zeros(len(vectors))]), "none"
    try:
        import umap
    except ImportError:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(vectors), "pca"
    neighbours = min(15, len(vectors) - 1)
    return umap.UMAP(n_components=2, metric="cosine", n_neighbors=neighbours, random_state=seed).fit_transform(
        vectors), "umap"


def _color(cluster: int) -> str:
    return NOISE_COLOR if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def _scaled(coords: np.ndarray) -> np.ndarray:
    """Coordinates stretched into the drawing area, y pointing up."""
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    unit = (coords - low) / span
    return np.column_stack([MARGIN + unit[:, 0] * (WIDTH - 2 * MARGIN),
                            HEIGHT - MARGIN - unit[:, 1] * (HEIGHT - 2 * MARGIN)])


def _points(xy: np.ndarray, assignment: np.ndarray, texts: list[str], labels: list[str] | None,
            rows: np.ndarray) -> str:
    circles = []
    for row in rows:
        text = texts[row] if len(texts[row]) <= HOVER_CHARS else texts[row][:HOVER_CHARS] + "…"
        label = f" [{labels[row]}]" if labels is not None else ""
        circles.append(f'<circle cx="{xy[row, 0]:.1f}" cy="{xy[row, 1]:.1f}" r="3" fill="{_color(int(assignment[row]))}">'
                       f"<title>cluster {int(assignment[row])}{html.escape(label)}: {html.escape(text)}</title></circle>")
    return "\n".join(circles)


def _legend(summary: list[dict[str, Any]]) -> str:
    items = []
    for entry in summary:
        name = "noise" if entry["cluster"] < 0 else f"cluster {entry['cluster']}"
        terms = html.escape(", ".join(entry["terms"][:6]))
        items.append(f'<li><span class="swatch" style="background:{_color(entry["cluster"])}"></span>'
                     f"<b>{name}</b> ({entry['size']:,}): {terms}</li>")
    return "\n".join(items)


def write_cluster_map(path: Path, coords: np.ndarray, assignment: np.ndarray, texts: list[str],
                      labels: list[str] | None, summary: list[dict[str, Any]], title: str, projection: str) -> None:
    """Write the map to `path`: every point (a seeded sample of MAX_POINTS above that) with its text on hover."""
    rows = np.arange(len(texts))
    note = ""
    if len(rows) > MAX_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(rows, MAX_POINTS, replace=False))
        note = f" (a random {MAX_POINTS:,} of them drawn)"
    xy = _scaled(np.asarray(coords, dtype=float))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #111827; }}
svg {{ border: 1px solid #e5e7eb; background: #fff; }}
circle {{ opacity: 0.75; }} circle:hover {{ opacity: 1; stroke: #111827; stroke-width: 1.5; r: 6; }}
ul {{ list-style: none; padding: 0; }} .swatch {{ display: inline-block; width: 12px; height: 12px;
margin-right: 6px; border-radius: 6px; vertical-align: middle; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(texts):,} texts{note}, projected to 2-D with {projection.upper()}. Hover a point to read its text.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">
{_points(xy, assignment, texts, labels, rows)}
</svg>
<ul>
{_legend(summary)}
</ul>
</body></html>
"""
    write_text_atomic(path, page)
