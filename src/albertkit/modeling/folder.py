"""Model folders: HF weights and config, the tokenizer, and `albertkit.json` (task, labels, training summary);
load any ALBERT folder as the head it holds; create a fresh one (`albertkit model init`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import HEADS, AlbertPreTrainedModel
from albertkit.modeling.model_card import measured_metrics, write_model_card
from albertkit.modeling.weights import load_weights_and_config, read_weights
from albertkit.tokenization.loading import describe_tokenizer, load_tokenizer, tokenizer_summary

ALBERTKIT_INFO = "albertkit.json"
# Facts about a model that albertkit cannot measure, which the model card shows when albertkit.json has them.
CARD_FACTS = ("license", "language", "datasets", "base_model", "tags")


def check_tokenizer_matches(tokenizer: Any, config: Any, path: str | Path | None = None) -> None:
    """A tokenizer of another vocabulary size would index past the embeddings or silently shift every id."""
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(
            f"the tokenizer has {tokenizer.vocab_size} pieces but the model's vocabulary is {config.vocab_size}:"
            " use the tokenizer the model was trained with", path,
        )


def write_model_folder(model: torch.nn.Module, directory: str | Path, tokenizer: Any, info: dict[str, Any]) -> None:
    """A complete model folder: HF weights and config, the tokenizer, `albertkit.json` (head, labels, summary) and
    the `README.md` model card written from them."""
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    write_model_info(directory, info)
    write_model_card(directory, model.config, info, tokenizer_summary(tokenizer))


def write_model_info(directory: str | Path, info: dict[str, Any]) -> None:
    """Write a model folder's `albertkit.json`."""
    write_text_atomic(Path(directory) / ALBERTKIT_INFO,
                      json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n")


def read_model_info(directory: str | Path) -> dict[str, Any]:
    """`albertkit.json` of a model folder ({} for a folder made by other tools)."""
    path = Path(directory) / ALBERTKIT_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def update_model_card(directory: str | Path, metrics: dict[str, Any] | None = None, split: str = "test",
                      **facts: Any) -> None:
    """Record figures measured on `split` (an `evaluate` result: metrics plus `data` and `examples`) and facts
    albertkit cannot know (license, language, datasets, base_model, tags) in `albertkit.json`, then rewrite the
    folder's `README.md` from it. Only finite real-valued metrics are recorded."""
    unknown = sorted(set(facts) - set(CARD_FACTS))
    if unknown:
        raise UserError(f"unknown model card field(s) {', '.join(unknown)}; choose from {', '.join(CARD_FACTS)}")
    directory = Path(directory)
    config = AlbertConfig.from_pretrained(directory)
    info = {**read_model_info(directory), **facts}
    if metrics is not None:
        recorded = {"metrics": measured_metrics(metrics), "data": metrics.get("data"), "examples": metrics.get("examples")}
        info["evaluations"] = {**info.get("evaluations", {}), split: {k: v for k, v in recorded.items() if v is not None}}
    write_model_info(directory, info)
    write_model_card(directory, config, info, describe_tokenizer(directory))


def architecture_of_weights(names: set[str], default: str) -> str:
    """The head a folder's weights belong to, for configs without `architectures` (older conversions, such as
    the community Chinese checkpoints); a `classifier` alone could be either classification head: `default`."""
    heads = {"sop_classifier.": "AlbertForPreTraining", "predictions.": "AlbertForMaskedLM",
             "qa_outputs.": "AlbertForQuestionAnswering"}
    for prefix, architecture in heads.items():
        if any(name.startswith(prefix) for name in names):
            return architecture
    return default


def load_any_model(directory: str | Path, default: str = "AlbertModel") -> torch.nn.Module:
    """The model class named in config.json's `architectures` (else the one its weights hold, else `default`),
    loaded from the folder."""
    architectures = AlbertConfig.from_pretrained(directory).architectures
    # Without `architectures` the weights decide, read once here and handed on.
    weights = None if architectures else read_weights(directory)
    architecture = architectures[0] if architectures else architecture_of_weights(set(weights), default)
    cls = HEADS.get(architecture)
    if cls is None:
        raise UserError(f"unsupported architecture {architecture!r}; albertkit knows {', '.join(HEADS)}",
                        Path(directory) / "config.json")
    return load_weights_and_config(cls, directory, weights)


def init_model_folder(
    preset: str, tokenizer_dir: str | Path, out_dir: str | Path, head: str = "AlbertForPreTraining",
    seed: int = 0, **overrides: Any,
) -> AlbertPreTrainedModel:
    """A freshly initialised model of `preset`, sized to the tokenizer, saved with it as an HF folder."""
    tokenizer = load_tokenizer(tokenizer_dir)
    config = AlbertConfig.from_preset(preset, **{"vocab_size": tokenizer.vocab_size, **overrides})
    torch.manual_seed(seed)
    model = HEADS[head](config)
    write_model_folder(model, out_dir, tokenizer, {"task": "init", "preset": preset, "seed": seed})
    return model
