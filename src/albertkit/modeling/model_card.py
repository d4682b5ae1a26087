"""The `README.md` model card of a model folder, written from what `albertkit.json` and `config.json` hold.

The YAML front matter is the Hugging Face Hub's (library_name, license, language, tags, base_model, datasets,
metrics, pipeline_tag, and `model-index` with the figures); the text says how the model was trained and how to
load it in albertkit and in transformers. Only figures albertkit measured appear: the training run's
evaluation (`summary` in albertkit.json) and evaluations recorded later (`evaluations`, e.g. the test set).
Facts albertkit cannot know are read from optional albertkit.json keys and left out when absent:
`license`, `language`, `datasets` and `base_model` (Hub ids), `tags`.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from albertkit.io.atomic import write_text_atomic
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import HEADS

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
# The card's last line; a README.md without it was written by someone else and is never replaced.
GENERATED_MARK = "<!-- written by albertkit from albertkit.json and config.json; rewritten when the model is saved -->"
PIPELINE_TAGS = {
    "AlbertModel": "feature-extraction",
    "AlbertForPreTraining": "fill-mask",
    "AlbertForMaskedLM": "fill-mask",
    "AlbertForSequenceClassification": "text-classification",
    "AlbertForTokenClassification": "token-classification",
    "AlbertForQuestionAnswering": "question-answering",
}
# albertkit's metric names -> (Hub metric id, readable name).
METRICS = {
    "accuracy": ("accuracy", "accuracy"), "macro_f1": ("f1", "macro F1"), "mcc": ("matthews_correlation", "MCC"),
    "f1": ("f1", "F1"), "precision": ("precision", "precision"), "recall": ("recall", "recall"),
    "pearson": ("pearsonr", "Pearson r"), "spearman": ("spearmanr", "Spearman rho"), "mse": ("mse", "MSE"),
    "exact_match": ("exact_match", "exact match"), "mlm_accuracy": ("accuracy", "MLM accuracy"),
    "mlm_loss": ("loss", "MLM loss"), "perplexity": ("perplexity", "MLM perplexity"),
    "sop_accuracy": ("accuracy", "SOP accuracy"), "loss": ("loss", "loss"),
}
TASK_WORDS = {
    "classification": "text classifier", "multi_label": "multi-label text classifier",
    "pair": "sentence-pair classifier", "regression": "text regressor",
    "ner": "named-entity tagger", "qa": "extractive question-answering model", "pretraining": "pretrained encoder",
    "sentence-embeddings": "sentence-embedding model", "init": "randomly initialised, untrained model",
}


@dataclass
class Evaluation:
    """Figures measured on one split: the metric values and, where known, the file, its size and the step."""

    split: str
    metrics: dict[str, float]
    data: str | None = None
    examples: int | None = None
    step: int | None = None


def measured_metrics(values: dict[str, Any]) -> dict[str, float]:
    """The finite real-valued metrics of a dict (counts, labels, confusion matrices and paths left out)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and math.isfinite(v)}


def measured_evaluations(info: dict[str, Any]) -> list[Evaluation]:
    """The training run's evaluation (dev, or held-out text for pretraining), then those recorded afterwards."""
    evaluations = []
    summary = info.get("summary") or {}
    if "final_metrics" in summary:  # a run's final/ folder: the metrics of its last evaluation
        metrics, step = summary["final_metrics"] or {}, summary.get("steps")
    else:  # a run's best/ folder: {"step": ..., **metrics}
        metrics, step = summary, summary.get("step")
    split = {"pretraining": "held-out", "sentence-embeddings": "eval pairs"}.get(info.get("task"), "dev")
    if measured_metrics(metrics):
        evaluations.append(Evaluation(split, measured_metrics(metrics), step=step))
    for split, recorded in (info.get("evaluations") or {}).items():
        evaluations.append(Evaluation(split, measured_metrics(recorded.get("metrics", {})), recorded.get("data"),
                                      recorded.get("examples")))
    return [e for e in evaluations if e.metrics]


def _as_list(value: Any) -> list[str]:
    return [] if not value else [str(v) for v in (value if isinstance(value, list | tuple) else [value])]


def card_metadata(config: AlbertConfig, info: dict[str, Any], name: str) -> dict[str, Any]:
    """The card's YAML front matter, in the Hub's schema; keys without a known value are left out."""
    architecture = (config.architectures or ["AlbertModel"])[0]
    sentence_transformers = bool(info.get("sentence_transformers"))
    pipeline_tag = "sentence-similarity" if sentence_transformers else PIPELINE_TAGS.get(architecture, "feature-extraction")
    tags = ["albertkit", "albert", *(["sentence-transformers"] if sentence_transformers else []), pipeline_tag,
            *_as_list(info.get("tags"))]
    evaluations = measured_evaluations(info)
    metadata: dict[str, Any] = {
        "library_name": "sentence-transformers" if sentence_transformers else "transformers",
        "license": info.get("license") or "unknown",
        "language": _as_list(info.get("language")),
        "tags": list(dict.fromkeys(tags)),
        "base_model": info.get("base_model"),
        "datasets": _as_list(info.get("datasets")),
        "metrics": list(dict.fromkeys(METRICS.get(k, (k, k))[0] for e in evaluations for k in e.metrics)),
        "pipeline_tag": pipeline_tag,
    }
    if evaluations:
        metadata["model-index"] = [{"name": name, "results": [_model_index_result(e, pipeline_tag, info)
                                                              for e in evaluations]}]
    return {k: v for k, v in metadata.items() if v}


def _model_index_result(evaluation: Evaluation, pipeline_tag: str, info: dict[str, Any]) -> dict[str, Any]:
    dataset_name = Path(evaluation.data).name if evaluation.data else f"{evaluation.split} set"
    datasets = _as_list(info.get("datasets"))
    return {
        "task": {"type": pipeline_tag},
        "dataset": {"name": dataset_name, "type": datasets[0] if datasets else dataset_name,
                    "split": evaluation.split},
        "metrics": [{"type": METRICS.get(k, (k, k))[0], "value": round(v, 6),
                     "name": f"{evaluation.split} {METRICS.get(k, (k, k))[1]}"} for k, v in evaluation.metrics.items()],
    }


def count_parameters(config: AlbertConfig) -> int:
    """Distinct parameters of the config's head, counted on the meta device (no memory, no weights read)."""
    architecture = (config.architectures or ["AlbertModel"])[0]
    with torch.device("meta"):
        return HEADS.get(architecture, HEADS["AlbertModel"])(config).num_parameters()


def render_model_card(config: AlbertConfig, info: dict[str, Any], tokenizer: dict[str, Any] | None, name: str,
                      path: str) -> str:
    """The whole README.md: front matter, results, model, training, usage (`path`: the folder, in the snippets)."""
    front = yaml.safe_dump(card_metadata(config, info, name), sort_keys=False, allow_unicode=True)
    architecture = (config.architectures or ["AlbertModel"])[0]
    what = TASK_WORDS.get(info.get("task"), "model")
    parts = [
        f"---\n{front}---\n",
        f"# {name}\n",
        f"An ALBERT {what} ({architecture}, {count_parameters(config) / 1e6:.1f}M parameters), made with "
        "albertkit. The folder loads in albertkit and in Hugging Face transformers.\n",
        _results_section(measured_evaluations(info)),
        _model_section(config, info, tokenizer),
        _training_section(info),
        _usage_section(architecture, info, path),
        GENERATED_MARK + "\n",
    ]
    return "\n".join(parts)


def _results_section(evaluations: list[Evaluation]) -> str:
    if not evaluations:
        return "## Results\n\nNo evaluation was recorded for this model.\n"
    rows = ["| split | data | examples | step | metric | value |", "|---|---|---|---|---|---|"]
    for e in evaluations:
        for key, value in e.metrics.items():
            rows.append(f"| {e.split} | {Path(e.data).name if e.data else ''} | "
                        f"{'' if e.examples is None else f'{e.examples:,}'} | {'' if e.step is None else e.step} | "
                        f"{METRICS.get(key, (key, key))[1]} | {value:.4f} |")
    return "## Results\n\nMeasured by albertkit:\n\n" + "\n".join(rows) + "\n"


def _model_section(config: AlbertConfig, info: dict[str, Any], tokenizer: dict[str, Any] | None) -> str:
    lines = [
        "## Model\n",
        f"- shape: {config.num_hidden_layers} layers sharing {config.num_hidden_groups} group(s) of "
        f"{config.inner_group_num} layer(s), hidden size {config.hidden_size}, embedding size "
        f"{config.embedding_size}, {config.num_attention_heads} attention heads, feed-forward "
        f"{config.intermediate_size}, up to {config.max_position_embeddings} tokens",
    ]
    if tokenizer:
        case = "lowercased" if tokenizer.get("do_lower_case") else "cased"
        lines.append(f"- tokenizer: {tokenizer['kind']} (`{tokenizer['file']}`), {tokenizer['vocab_size']:,} "
                     f"pieces, {case}")
    labels = (info.get("task_spec") or {}).get("labels") or (list(config.id2label.values()) if config.id2label else [])
    if labels and info.get("task") not in ("regression", "qa"):
        lines.append(f"- labels: {', '.join(f'`{label}`' for label in labels)}")
    if info.get("pooling"):
        normalized = "normalized to unit length" if info.get("normalize", True) else "not normalized"
        lines.append(f"- sentence embedding: {info['pooling']} pooling, {normalized}")
    return "\n".join(lines) + "\n"


def _training_section(info: dict[str, Any]) -> str:
    task = info.get("task")
    if task == "init":
        return (f"## Training\n\nNone: randomly initialised from the `{info.get('preset')}` preset (seed "
                f"{info.get('seed')}). Pretrain or fine-tune it before use.\n")
    lines = ["## Training\n"]
    if task:
        lines.append(f"- task: {task}")
    if info.get("base_model"):
        lines.append(f"- starting point: `{info['base_model']}`")
    spec = info.get("task_spec") or {}
    if spec.get("max_seq_length"):
        lines.append(f"- maximum sequence length: {spec['max_seq_length']} tokens")
    summary = info.get("summary") or {}
    if "steps" in summary:
        lines.append(f"- {summary['steps']:,} optimizer steps ({summary.get('epochs_completed', 0):.2f} epochs), "
                     f"stopped by {str(summary.get('stopped_because', 'the step limit')).replace('_', ' ')}, "
                     f"{summary.get('seconds', 0) / 60:.1f} minutes")
    if summary.get("best_step") is not None:
        lines.append(f"- best evaluation at step {summary['best_step']}")
    elif "step" in summary:
        lines.append(f"- this is the model of step {summary['step']}, the best evaluation of its run")
    if len(lines) == 1:
        lines.append("- not recorded")
    return "\n".join(lines) + "\n"


def _usage_section(architecture: str, info: dict[str, Any], path: str) -> str:
    pooling, normalize = info.get("pooling", "mean"), bool(info.get("normalize", True))
    albertkit_cli = {
        "AlbertForSequenceClassification": f"albertkit predict --model {path} --input texts.tsv --output predictions.jsonl\n"
                                           f"albertkit serve --model {path}",
        "AlbertForTokenClassification": f"albertkit predict --model {path} --input sentences.txt --output entities.jsonl\n"
                                        f"albertkit serve --model {path}",
        "AlbertForQuestionAnswering": f"albertkit predict --model {path} --input questions.json --output answers.jsonl",
        "AlbertModel": f"albertkit embed --model {path} --input texts.txt --output vectors.npy --pooling {pooling}"
                       + ("" if normalize else " --no-normalize"),
    }.get(architecture, f"albertkit finetune --model {path} --task classification --train train.tsv "
                        f"--dev dev.tsv --out my-run\nalbertkit serve --model {path}   # fill-mask")
    if architecture == "AlbertModel":
        albertkit_python = (f'from albertkit import Encoder\n\nvectors = Encoder("{path}").encode(["first text", '
                            f'"second text"], pooling="{pooling}", normalize={normalize})\n')
    else:
        albertkit_python = (f"from albertkit import {architecture}, load_tokenizer\n\n"
                            f'model = {architecture}.from_pretrained("{path}")\ntokenizer = load_tokenizer("{path}")\n')
    parts = ["## How to use\n", "With albertkit:\n", f"```bash\n{albertkit_cli}\n```\n",
             f"```python\n{albertkit_python}```\n"]
    if info.get("sentence_transformers"):
        parts += ["With sentence-transformers:\n", "```python\nfrom sentence_transformers import SentenceTransformer\n\n"
                  f'model = SentenceTransformer("{path}")\nvectors = model.encode(["first text", "second text"])\n```\n']
    parts += ["With transformers:\n", f"```python\n{_transformers_snippet(architecture, pooling, normalize, path)}```\n"]
    return "\n".join(parts)


def _transformers_snippet(architecture: str, pooling: str, normalize: bool, path: str) -> str:
    load = (f'tokenizer = AutoTokenizer.from_pretrained("{path}")\n'
            f'model = {"AutoModel" if architecture == "AlbertModel" else "AutoModelForQuestionAnswering"}'
            f'.from_pretrained("{path}")\n')
    if architecture == "AlbertModel":
        pooled = {"cls": "hidden[:, 0]", "pooler": "output.pooler_output"}.get(pooling, "(hidden * mask).sum(1) / mask.sum(1)")
        return ("import torch\nfrom transformers import AutoModel, AutoTokenizer\n\n" + load
                + 'batch = tokenizer(["first text", "second text"], padding=True, return_tensors="pt")\n'
                "with torch.no_grad():\n    output = model(**batch)\n"
                'hidden, mask = output.last_hidden_state, batch["attention_mask"].unsqueeze(-1)\n'
                f"vectors = {pooled}\n" + ("vectors = torch.nn.functional.normalize(vectors, dim=-1)\n" if normalize else ""))
    if architecture == "AlbertForQuestionAnswering":  # transformers 5 has no question-answering pipeline
        return ("import torch\nfrom transformers import AutoModelForQuestionAnswering, AutoTokenizer\n\n" + load
                + 'batch = tokenizer("Where was Ada born?", "Ada was born in London.", return_tensors="pt")\n'
                "with torch.no_grad():\n    output = model(**batch)\n"
                "start, end = int(output.start_logits.argmax()), int(output.end_logits.argmax())\n"
                'print(tokenizer.decode(batch["input_ids"][0, start : end + 1]))\n')
    task, example = {
        "AlbertForSequenceClassification": ("text-classification", "a gorgeous, moving film"),
        "AlbertForTokenClassification": ("token-classification", "Ada Lovelace was born in London."),
    }.get(architecture, ("fill-mask", "The capital of France is [MASK]."))
    return f'from transformers import pipeline\n\nrun = pipeline("{task}", model="{path}")\nprint(run("{example}"))\n'


def write_model_card(directory: str | Path, config: AlbertConfig, info: dict[str, Any],
                     tokenizer: dict[str, Any] | None) -> bool:
    """Write `README.md` into a model folder; a README.md albertkit did not write is kept (returns False)."""
    directory = Path(directory)
    path = directory / CARD_NAME
    if path.is_file() and GENERATED_MARK not in path.read_text(encoding="utf-8", errors="replace"):
        logger.warning("%s was not written by albertkit: left as it is, no model card written", path)
        return False
    folder = directory.resolve()
    # A run's best/ or final/: the run's name says which model it is.
    parts = [folder.parent.name, folder.name] if folder.name in ("best", "final") else [folder.name]
    write_text_atomic(path, render_model_card(config, info, tokenizer, "-".join(parts), "path/to/" + "/".join(parts)))
    return True
