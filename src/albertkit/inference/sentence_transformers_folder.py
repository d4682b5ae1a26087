"""A model folder as a sentence-transformers model: `SentenceTransformer(folder).encode(texts)` gives what
`albertkit embed` gives (same tokenizer, truncation, pooling and normalization).

The layout is sentence-transformers' classic one, which every version from 2.x to today reads: the HF files of the
encoder at the root (Transformer module), `1_Pooling` (mean or first token), `2_Dense` (tanh layer holding the
pooler's weights, for pooling "pooler"), a `Normalize` module when normalized, and `modules.json`,
`sentence_bert_config.json`, `config_sentence_transformers.json` tying them together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from albertkit import __version__
from albertkit.inference.embed import Encoder
from albertkit.io.atomic import atomic_folder
from albertkit.modeling.folder import CARD_FACTS, read_model_info, write_model_folder

MODULES_NAME = "modules.json"
MODULE_TYPES = {
    "transformer": "sentence_transformers.models.Transformer",
    "pooling": "sentence_transformers.models.Pooling",
    "dense": "sentence_transformers.models.Dense",
    "normalize": "sentence_transformers.models.Normalize",
}


def save_sentence_transformers(
    model_dir: str | Path, out_dir: str | Path, pooling: str = "mean", normalize: bool = True, max_length: int = 512,
) -> Path:
    """Write `out_dir` as a sentence-transformers model of `model_dir`'s encoder with `pooling` ("mean", "cls",
    "pooler") and optional unit-length normalization; returns `out_dir`.

    The folder is also a complete albertkit model folder (AlbertModel, tokenizer, albertkit.json, model card).
    It appears whole or not at all; an existing `out_dir` must be empty or an earlier sentence-transformers folder.
    """
    out_dir = Path(out_dir)
    encoder = Encoder(model_dir, device="cpu", max_length=max_length)  # only saves: no need for a GPU
    encoder.check_pooling(pooling)
    with atomic_folder(out_dir, MODULES_NAME, "sentence-transformers model") as partial:
        write_model_folder(encoder.albert, partial, encoder.tokenizer,
                           sentence_embedding_info(read_model_info(model_dir), model_dir, pooling, normalize))
        write_sentence_transformers_modules(partial, encoder.albert, pooling, normalize, encoder.max_length)
    return out_dir


def sentence_embedding_info(source: dict[str, Any], model_dir: str | Path, pooling: str,
                            normalize: bool) -> dict[str, Any]:
    """albertkit.json of the new folder: the source's facts (license, language...) always; its measured figures only
    when they were measured on these very embeddings (a sentence-embedding model with the same pooling)."""
    info: dict[str, Any] = {k: source[k] for k in CARD_FACTS if k in source}
    same_embeddings = source.get("task") == "sentence-embeddings" and source.get("pooling", "mean") == pooling
    if same_embeddings:
        info |= {k: source[k] for k in ("summary", "evaluations") if k in source}
    return {"task": "sentence-embeddings", "pooling": pooling, "normalize": normalize, "sentence_transformers": True,
            "source": str(model_dir), **info}


def write_sentence_transformers_modules(directory: Path, albert: torch.nn.Module, pooling: str, normalize: bool,
                                        max_length: int) -> None:
    """The sentence-transformers files beside an encoder's HF files in `directory`."""
    hidden = albert.config.hidden_size
    modules = [("transformer", "")]
    pooling_config = {f"pooling_mode_{mode}": False for mode in
                      ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")}
    pooling_config |= {"pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_cls_token": pooling != "mean"}
    _write_json(directory / "1_Pooling" / "config.json",
                {"word_embedding_dimension": hidden, **pooling_config, "include_prompt": True})
    modules.append(("pooling", "1_Pooling"))
    if pooling == "pooler":  # the tanh layer on [CLS], as a Dense module holding the pooler's weights
        dense = directory / "2_Dense"
        _write_json(dense / "config.json", {"in_features": hidden, "out_features": hidden, "bias": True,
                                            "activation_function": "torch.nn.modules.activation.Tanh"})
        save_file({"linear.weight": albert.pooler.weight.detach().contiguous(),
                   "linear.bias": albert.pooler.bias.detach().contiguous()}, str(dense / "model.safetensors"))
        modules.append(("dense", "2_Dense"))
    if normalize:
        normalize_dir = directory / f"{len(modules)}_Normalize"
        normalize_dir.mkdir(exist_ok=True)  # a best/ folder is rewritten in place
        modules.append(("normalize", normalize_dir.name))
    _write_json(directory / MODULES_NAME, [{"idx": i, "name": str(i), "path": path, "type": MODULE_TYPES[kind]}
                                           for i, (kind, path) in enumerate(modules)])
    _write_json(directory / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    _write_json(directory / "config_sentence_transformers.json", {
        "__version__": {"albertkit": __version__, "pytorch": torch.__version__},
        "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine",
    })


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
