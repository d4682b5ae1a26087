"""Run reports: RUN_DIR/report.md and RUN_DIR/report.html, rebuilt from a run's log, config and model folders.

The report is a list of sections made of tables, paragraphs, code and figures; one renderer writes them as
Markdown and another as self-contained HTML (inline CSS, PNG charts in RUN_DIR/report/ linked relatively).
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.io.run_folder import list_checkpoints
from albertkit.modeling.folder import ALBERTKIT_INFO, read_model_info
from albertkit.report.plots import Series, confusion_heatmap, line_chart, plots_available
from albertkit.report.runlog import LOG_NAME, read_log

FIGURES_DIR = "report"
# Keys of the "start" record written by the loop itself; every other key is the task's run info.
LOOP_START_KEYS = {"kind", "step", "time", "config", "world_size", "device", "total_steps", "steps_per_epoch",
                   "model_config"}
MODEL_SHAPE_KEYS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings")
STOP_REASONS = {
    "max_steps": "it reached the planned number of steps",
    "time_budget": "the time budget ran out (the model was saved at that step)",
    "early_stopping": "the evaluation metric stopped improving (early stopping)",
}


# --- what a run's log says ------------------------------------------------------------------------------


@dataclass
class RunHistory:
    """A run's log records, sorted by kind."""

    starts: list[dict[str, Any]]
    train: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    end: dict[str, Any] | None

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> RunHistory:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_kind.setdefault(record.get("kind", ""), []).append(record)
        ends = by_kind.get("end", [])
        return cls(by_kind.get("start", []), by_kind.get("train", []), by_kind.get("eval", []),
                   by_kind.get("skipped", []), ends[-1] if ends else None)

    @property
    def last_step(self) -> int:
        return max((r["step"] for r in self.train + self.evals + self.starts), default=0)

    def curve(self, records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of `key` over the records that carry a number for it."""
        pairs = [(r["step"], r[key]) for r in records if _is_number(r.get(key))]
        array = np.array(pairs, dtype=np.float64).reshape(-1, 2)
        return array[:, 0], array[:, 1]

    def eval_metric_names(self) -> list[str]:
        """Names of the numeric evaluation metrics, in the order they first appear."""
        names: dict[str, None] = {}
        for record in self.evals:
            for key, value in record.items():
                if key not in ("step", "time") and _is_number(value):
                    names.setdefault(key)
        return list(names)


def load_run(run_dir: str | Path) -> RunHistory:
    """The history of the run in `run_dir`; a folder that is not a run, or an empty log, is a UserError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError("no such run folder", run_dir)
    if not (run_dir / LOG_NAME).is_file():
        raise UserError(f"not a run folder: there is no {LOG_NAME} (give the --out folder of a training run)", run_dir)
    history = RunHistory.from_records(read_log(run_dir))
    if not history.starts:
        raise UserError("the log has no start record: it is empty or not written by albertkit", run_dir / LOG_NAME)
    return history


# --- the report's building blocks -----------------------------------------------------------------------


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: str  # relative to the run folder
    caption: str


@dataclass
class Code:
    text: str


Block = str | Table | Figure | Code  # a str is a paragraph; `backticks` mark code


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


# --- formatting -----------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_value(value: Any) -> str:
    """Numbers readable at a glance: thousands separators, four significant decimals."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not np.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def format_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _format_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


def _folder_size(path: Path) -> str:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if size < 1000:
        return f"{size} bytes"
    exponent = min(int(np.log10(size) // 3), 4)
    return f"{size / 1000**exponent:,.1f} {('', 'KB', 'MB', 'GB', 'TB')[exponent]}"


# --- sections -------------------------------------------------------------------------------------------


def _best_metric_name(history: RunHistory) -> str | None:
    """The metric that picked the best model: the one whose value at the best step equals `best_metric`."""
    end = history.end or {}
    best, step = end.get("best_metric"), end.get("best_step")
    for record in history.evals:
        if record["step"] == step:
            return next((k for k, v in record.items() if k not in ("step", "time") and v == best), None)
    return None


def _summary_section(run_dir: Path, history: RunHistory) -> Section:
    first, end = history.starts[0], history.end
    info = {k: v for k, v in first.items() if k not in LOOP_START_KEYS}
    rows = [["task", format_value(info.get("task", "–"))]]
    if end is not None:
        reason = end.get("stopped_because", "")
        rows += [
            ["status", f"finished: {STOP_REASONS.get(reason, reason)}"],
            ["steps", f"{end['steps']:,} of {history.starts[-1]['total_steps']:,}"
                      f" ({end.get('epochs_completed', 0.0):.3g} epochs)"],
            ["training time", format_duration(end.get("seconds", 0.0))],
        ]
        if len(history.starts) > 1:
            rows.append(["wall time since the first start", format_duration(end["time"] - first["time"])])
        rows.append(["throughput", f"{format_value(end.get('tokens_per_second'))} tokens/s"])
        if end.get("best_step") is not None:
            name = _best_metric_name(history) or "best metric"
            rows.append([f"best {name}", f"{format_value(end['best_metric'])} at step {end['best_step']:,}"])
    else:
        rows += [
            ["status", "no end record: the run is still going, or stopped before finishing"],
            ["last logged step", f"{history.last_step:,} of {history.starts[-1]['total_steps']:,}"],
        ]
    rows.append(["started", _format_time(first["time"])])
    if len(history.starts) > 1:
        rows.append(["resumed at step", ", ".join(f"{s['step']:,}" for s in history.starts[1:])])
    skipped = [r["step"] for r in history.skipped]
    rows.append(["skipped steps (non-finite)", f"{len(skipped)}" + (f" (steps {format_value(skipped[:20])})" if skipped else "")])
    rows.append(["device", f"{first.get('device', '?')} × {first.get('world_size', 1)} process(es)"])
    return Section(f"Run report: {run_dir.resolve().name}", [f"Run folder: `{run_dir}`", Table(["", ""], rows)])


def _metrics_section(history: RunHistory) -> Section:
    if not history.evals:
        return Section("Final metrics", ["No evaluation was logged."])
    last = history.evals[-1]
    names = [k for k in history.eval_metric_names() if _is_number(last.get(k))]
    rows = []
    for name in names:
        _, values = history.curve(history.evals, name)
        rows.append([name, format_value(last[name]), format_value(float(values.min())),
                     format_value(float(values.max()))])
    return Section(
        "Final metrics",
        [f"Evaluation at step {last['step']:,} (the last of {len(history.evals)}).",
         Table(["metric", "final", "lowest", "highest"], rows)],
    )


def _spans_decades(values: np.ndarray) -> bool:
    """Whether positive values range over more than a factor of ten: a log scale shows them better."""
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool(np.all(finite > 0)) and finite.max() > 10 * finite.min()


COUNT_SUFFIXES = ("_tokens", "_pairs")


@dataclass
class ChartSpec:
    file_name: str
    title: str
    series: list[Series]
    ylabel: str
    log_y: bool = False
    engineering: bool = False


def _chart_specs(history: RunHistory) -> list[ChartSpec]:
    """Every chart the history has data for."""
    specs = []

    def series(records: list[dict[str, Any]], key: str, label: str, markers: bool = False,
               smooth: bool = True) -> list[Series]:
        steps, values = history.curve(records, key)
        # Baselines (pretraining's unigram figures at the same masked positions) are reference lines.
        reference = "baseline" in key or "unigram" in key
        return [Series(label, steps, values, markers and not reference, smooth, reference)] if len(values) else []

    # Counts (masked tokens, SOP pairs) say how much was evaluated; they are no curve.
    metric_names = [k for k in history.eval_metric_names() if not k.endswith(COUNT_SUFFIXES)]
    eval_losses = [k for k in metric_names if k.endswith("loss")]
    losses = series(history.train, "loss", "train loss")
    for name in eval_losses:
        losses += series(history.evals, name, f"eval {name}", markers=True)
    specs.append(ChartSpec("loss.png", "Loss", losses, "loss"))
    bounded, unbounded = [], []
    for name in (k for k in metric_names if k not in eval_losses):
        _, values = history.curve(history.evals, name)
        # Scores in [-1, 1] (accuracy, F1, MCC...) share one chart; others (perplexity, MSE) get their own.
        (bounded if np.all(np.abs(values) <= 1.0) else unbounded).append(name)
    specs.append(ChartSpec("eval_metrics.png", "Evaluation metrics",
                           [s for name in bounded for s in series(history.evals, name, name, markers=True)], "score"))
    for name in unbounded:
        _, values = history.curve(history.evals, name)
        specs.append(ChartSpec(f"eval_{re.sub(r'[^A-Za-z0-9_]', '_', name)}.png", f"Evaluation: {name}",
                               series(history.evals, name, name, markers=True), name, _spans_decades(values)))
    specs.append(ChartSpec("learning_rate.png", "Learning rate",
                           series(history.train, "lr", "learning rate", smooth=False), "learning rate"))
    specs.append(ChartSpec("throughput.png", "Throughput", series(history.train, "tokens_per_second", "tokens/s"),
                           "tokens per second", engineering=True))
    grad_norms = series(history.train, "grad_norm", "grad norm")
    specs.append(ChartSpec("grad_norm.png", "Gradient norm (before clipping)", grad_norms, "L2 norm",
                           log_y=bool(grad_norms) and _spans_decades(grad_norms[0].values)))
    return [spec for spec in specs if spec.series]


def _confusion(history: RunHistory) -> tuple[dict[str, Any], np.ndarray, list[str]] | None:
    """The last evaluation that carries a confusion matrix, the matrix and its label names."""
    for record in reversed(history.evals):
        if record.get("confusion_matrix"):
            matrix = np.asarray(record["confusion_matrix"], dtype=np.int64)
            labels = [str(x) for x in record.get("labels") or range(len(matrix))]
            return record, matrix, labels
    return None


def _curves_and_confusion(run_dir: Path, history: RunHistory) -> list[Section]:
    """The charts section and, for classification, the confusion matrix section; the PNGs are written here."""
    figures_dir = run_dir / FIGURES_DIR
    confusion = _confusion(history)
    drawn: list[str] = []
    curves = Section("Curves")
    if not plots_available():
        curves.blocks.append("matplotlib is not installed, so this report has no plots"
                             " (install it with `pip install 'albertkit[train]'` and run `albertkit report` again).")
    else:
        for spec in _chart_specs(history):
            line_chart(figures_dir / spec.file_name, spec.title, spec.series, spec.ylabel, spec.log_y, spec.engineering)
            curves.blocks.append(Figure(f"{FIGURES_DIR}/{spec.file_name}", spec.title))
            drawn.append(spec.file_name)
        if not drawn:
            curves.blocks.append("Nothing was logged yet to draw.")
    sections = [curves]
    if confusion is not None:
        record, matrix, labels = confusion
        section = Section("Confusion matrix", [f"Evaluation at step {record['step']:,}: rows are true labels,"
                                               " columns predicted labels."])
        rows = [[f"**{label}**", *(f"{c:,}" for c in row), f"{row.sum():,}"] for label, row in zip(labels, matrix, strict=True)]
        rows.append(["**total**", *(f"{c:,}" for c in matrix.sum(axis=0)), f"{matrix.sum():,}"])
        section.blocks.append(Table(["true \\ predicted", *labels, "total"], rows))
        if plots_available():
            confusion_heatmap(figures_dir / "confusion_matrix.png", matrix, labels, f"Confusion matrix, step {record['step']:,}")
            section.blocks.append(Figure(f"{FIGURES_DIR}/confusion_matrix.png", "Confusion matrix"))
            drawn.append("confusion_matrix.png")
        sections.append(section)
    # A regenerated report keeps no chart from an earlier version of itself.
    for stale in figures_dir.glob("*.png") if figures_dir.is_dir() else []:
        if stale.name not in drawn:
            stale.unlink()
    return sections


def _data_section(run_dir: Path, history: RunHistory) -> Section:
    first = history.starts[0]
    config = history.starts[-1].get("config", {})
    info = {k: v for k, v in first.items() if k not in LOOP_START_KEYS}
    rows = [[key, format_value(value)] for key, value in info.items() if key != "task"]  # the summary shows the task
    rows.append(["batch size (global)", format_value(config.get("batch_size"))])
    rows.append(["steps per epoch", format_value(first.get("steps_per_epoch"))])
    rows.append(["planned steps", format_value(history.starts[-1].get("total_steps"))])
    end = history.end
    if end is not None and end.get("tokens_per_second") and end.get("seconds"):
        rows.append(["tokens processed (last session)", format_value(int(end["tokens_per_second"] * end["seconds"]))])
    blocks: list[Block] = [Table(["", ""], rows)]
    model_config = first.get("model_config")
    if model_config:
        shape = ", ".join(f"{k}={format_value(model_config[k])}" for k in MODEL_SHAPE_KEYS if k in model_config)
        blocks.append(f"Model: {shape}.")
    for folder in ("best", "final"):
        notes = read_model_info(run_dir / folder)
        notes = {k: v for k, v in notes.items() if k != "summary"}  # the summary repeats the metrics above
        if notes:
            blocks.append(f"`{folder}/{ALBERTKIT_INFO}`:")
            blocks.append(Table(["key", "value"], [[k, format_value(v)] for k, v in notes.items()]))
            break
    return Section("Data and model", blocks)


def _outputs_section(run_dir: Path, history: RunHistory) -> Section:
    rows = []
    for checkpoint in list_checkpoints(run_dir / "checkpoints"):
        rows.append([f"`checkpoints/{checkpoint.path.name}/`", "checkpoint (resume with `--resume`)",
                     f"{checkpoint.step:,}", _folder_size(checkpoint.path)])
    end = history.end or {}
    for folder, what, step in (("best", "best model by the evaluation metric", end.get("best_step")),
                               ("final", "model at the last step", end.get("steps"))):
        path = run_dir / folder
        if path.is_dir():
            rows.append([f"`{folder}/`", what, format_value(step), _folder_size(path)])
    blocks: list[Block] = [
        f"Everything is under `{run_dir}`.",
        Table(["folder", "what", "step", "size"], rows) if rows else "No checkpoint or model folder yet.",
        f"Logs: `{LOG_NAME}` (one JSON record per event)."
        + (" TensorBoard: `tensorboard --logdir " + str(run_dir / "tensorboard") + "`."
           if (run_dir / "tensorboard").is_dir() else ""),
    ]
    return Section("Checkpoints and models", blocks)


def _config_section(run_dir: Path, history: RunHistory) -> Section:
    path = run_dir / "config.yaml"
    if path.is_file():
        return Section("Effective config", ["From `config.yaml`:", Code(path.read_text(encoding="utf-8").rstrip())])
    config = history.starts[-1].get("config", {})
    return Section("Effective config", ["Training settings from the log's start record (there is no `config.yaml`):",
                                        Code(yaml.safe_dump(config, sort_keys=True).rstrip())])


def build_sections(run_dir: Path, history: RunHistory) -> list[Section]:
    """Every section of the report, drawing the charts into RUN_DIR/report/ on the way."""
    return [
        _summary_section(run_dir, history),
        _metrics_section(history),
        *_curves_and_confusion(run_dir, history),
        _data_section(run_dir, history),
        _outputs_section(run_dir, history),
        _config_section(run_dir, history),
    ]


# --- rendering ------------------------------------------------------------------------------------------


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(sections: list[Section]) -> str:
    """The report as GitHub-flavoured Markdown; the first section is the title."""
    out = []
    for index, section in enumerate(sections):
        out.append(("# " if index == 0 else "## ") + section.title + "\n")
        for block in section.blocks:
            if isinstance(block, Table):
                out.append("| " + " | ".join(_markdown_cell(h) for h in block.header) + " |")
                out.append("|" + "---|" * len(block.header))
                out += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in block.rows]
                out.append("")
            elif isinstance(block, Figure):
                out.append(f"![{block.caption}]({block.path})\n")
            elif isinstance(block, Code):
                out.append(f"```yaml\n{block.text}\n```\n")
            else:
                out.append(block + "\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then turn `code` and **bold** marks into tags."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: #1f2937;
       background: #f3f4f6; margin: 0; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; color: #111827; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 18px 22px; margin: 16px 0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 14px 5px 0; border-bottom: 1px solid #e5e7eb; text-align: left; vertical-align: top; }
th { color: #6b7280; font-weight: 600; font-size: 13px; }
td:first-child { color: #374151; font-weight: 500; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6;
       padding: 1px 5px; border-radius: 4px; }
pre { background: #111827; color: #e5e7eb; padding: 14px 16px; border-radius: 8px; overflow-x: auto;
      font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 14px; }
figure { margin: 0; }
figure img { width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 6px; }
"""


def render_html(sections: list[Section]) -> str:
    """The report as one HTML page with inline CSS; charts are <img> tags pointing at RUN_DIR/report/."""
    body = []
    for index, section in enumerate(sections):
        heading = "h1" if index == 0 else "h2"
        parts = [f"<{heading}>{html.escape(section.title)}</{heading}>"]
        figures = []
        for block in section.blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.header)
                head_row = f"<thead><tr>{head}</tr></thead>" if any(block.header) else ""
                rows = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                               for row in block.rows)
                parts.append(f"<table>{head_row}<tbody>{rows}</tbody></table>")
            elif isinstance(block, Figure):
                # The chart carries its own title, so the caption is the alt text only.
                figures.append(f'<figure><img src="{html.escape(block.path)}" alt="{html.escape(block.caption)}"></figure>')
            elif isinstance(block, Code):
                parts.append(f"<pre>{html.escape(block.text)}</pre>")
            else:
                parts.append(f"<p>{_inline_html(block)}</p>")
        if figures:
            parts.append('<div class="figures">' + "".join(figures) + "</div>")
        body.append("<section>" + "".join(parts) + "</section>")
    title = html.escape(sections[0].title)
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>{STYLE}</style>\n</head>\n'
            f"<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def write_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.md and RUN_DIR/report.html (charts in RUN_DIR/report/); returns the HTML path."""
    run_dir = Path(run_dir)
    history = load_run(run_dir)
    sections = build_sections(run_dir, history)
    write_text_atomic(run_dir / "report.md", render_markdown(sections))
    write_text_atomic(run_dir / "report.html", render_html(sections))
    return run_dir / "report.html"
