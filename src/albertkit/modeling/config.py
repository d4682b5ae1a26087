"""AlbertConfig: the model's shape, with the field names of `transformers.AlbertConfig`, plus presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.modeling.activations import ACTIVATIONS, LEARNED_ACTIVATIONS

CONFIG_NAME = "config.json"

# Sizes of the ALBERT paper (Lan et al. 2019, table 1) and two small ones for CPUs.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(embedding_size=128, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "small": dict(embedding_size=128, hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048),
    "base": dict(embedding_size=128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(embedding_size=128, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "xlarge": dict(embedding_size=128, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, intermediate_size=8192),
    "xxlarge": dict(embedding_size=128, hidden_size=4096, num_hidden_layers=12, num_attention_heads=64, intermediate_size=16384),
}
# transformers' defaults where they differ from this dataclass's (its AlbertConfig() is xxlarge): what a
# config.json that leaves these out means.
TRANSFORMERS_DEFAULTS: dict[str, int] = dict(hidden_size=4096, num_attention_heads=64, intermediate_size=16384)


@dataclass
class AlbertConfig:
    """The shape of an ALBERT model; `to_dict()` is a `config.json` that transformers loads."""

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_dropout_prob: float = 0.1
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3
    # False: the masked-LM decoder has weights of its own instead of the word embeddings'.
    tie_word_embeddings: bool = True
    # Task heads: label names (classification, NER) and the loss kind ("regression" for one output).
    id2label: dict[int, str] | None = None
    problem_type: str | None = None
    architectures: list[str] | None = None
    # Attention heads removed by `albertkit prune`: {layer: [original head indices]}, layers numbered as transformers
    # numbers them (group * inner_group_num + inner index); a shared layer is pruned once for all its applications.
    pruned_heads: dict[int, list[int]] | None = None
    # Fields of a config.json that albertkit does not use, kept so a round trip loses nothing.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        if self.num_hidden_groups < 1 or self.num_attention_heads < 1:
            raise UserError("num_hidden_groups and num_attention_heads must be at least 1, got "
                            f"{self.num_hidden_groups} and {self.num_attention_heads}")
        if self.hidden_size % self.num_attention_heads:
            raise UserError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act in LEARNED_ACTIVATIONS:
            raise UserError(f"hidden_act {self.hidden_act!r} has learned weights of its own, which albertkit does "
                            "not support")
        if self.hidden_act not in ACTIVATIONS:
            raise UserError(f"unknown hidden_act {self.hidden_act!r}; choose one of {', '.join(ACTIVATIONS)}")
        position_embedding_type = self.extra.get("position_embedding_type") or "absolute"
        if position_embedding_type != "absolute":
            raise UserError(f"position_embedding_type {position_embedding_type!r} is not supported: albertkit (like "
                            "transformers 5) implements absolute position embeddings only")
        self.pruned_heads = self._checked_pruned_heads()

    def _checked_pruned_heads(self) -> dict[int, list[int]] | None:
        """`pruned_heads` with int keys (JSON has strings), sorted heads, and every layer keeping one head at least."""
        if not self.pruned_heads:
            return None
        layers = self.num_hidden_groups * self.inner_group_num
        checked: dict[int, list[int]] = {}
        for key, heads in self.pruned_heads.items():
            layer, heads = int(key), sorted({int(h) for h in heads})
            if not 0 <= layer < layers or any(not 0 <= h < self.num_attention_heads for h in heads):
                raise UserError(f"pruned_heads of layer {key} names a layer or head the model does not have "
                                f"({layers} layers of {self.num_attention_heads} heads)")
            if len(heads) == self.num_attention_heads:
                raise UserError(f"pruned_heads removes every head of layer {layer}")
            if heads:
                checked[layer] = heads
        return checked or None

    def layer_groups(self) -> list[int]:
        """The group whose weights each layer runs, as transformers maps them: `int(i / (layers / groups))`.

        The float expression is kept on purpose: for some shapes (18 layers in 14 groups) it differs from the
        exact floor(i * groups / layers), and from the original TF code; transformers is the reference.
        """
        return [int(i / (self.num_hidden_layers / self.num_hidden_groups)) for i in range(self.num_hidden_layers)]

    @property
    def num_labels(self) -> int:
        return len(self.id2label) if self.id2label else 2

    @property
    def label2id(self) -> dict[str, int] | None:
        return None if self.id2label is None else {v: k for k, v in self.id2label.items()}

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> AlbertConfig:
        """A config of one of the sizes in `PRESETS`, with any field overridden."""
        if name not in PRESETS:
            raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data = {**self.extra, **data, "model_type": "albert"}
        for key in ("id2label", "problem_type", "architectures", "pruned_heads"):
            if data[key] is None:
                del data[key]
        if self.pruned_heads:
            data["pruned_heads"] = {str(k): v for k, v in self.pruned_heads.items()}
        if self.id2label is not None:
            data["id2label"] = {str(k): v for k, v in self.id2label.items()}
            data["label2id"] = self.label2id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlbertConfig:
        """Read a config.json's fields as transformers does: its defaults for fields left out, `num_labels` without
        `id2label` named LABEL_0...; fields albertkit does not use are kept in `extra`."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {**TRANSFORMERS_DEFAULTS, **{k: v for k, v in data.items() if k in names}}
        extra = {k: v for k, v in data.items() if k not in names and k not in ("model_type", "label2id", "num_labels")}
        if data.get("model_type", "albert") != "albert":
            raise UserError(f"config has model_type {data['model_type']!r}, expected 'albert'")
        if known.get("id2label") is None and data.get("num_labels") is not None:
            known["id2label"] = {i: f"LABEL_{i}" for i in range(int(data["num_labels"]))}
        return cls(**known, extra=extra)

    def save_pretrained(self, directory: str | Path) -> None:
        write_text_atomic(Path(directory) / CONFIG_NAME, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> AlbertConfig:
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise UserError(f"no {CONFIG_NAME} in {directory}: not a model folder")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as err:
            raise UserError(f"cannot read config: {err}", path) from err
        except UserError as err:
            raise UserError(str(err), path) from None
