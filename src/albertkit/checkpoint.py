"""Checkpoint folders on disk: atomic writes, HF-format weights (safetensors), safe loading."""

from __future__ import annotations

import errno
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from albertkit.errors import UserError

logger = logging.getLogger(__name__)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)`, fsync, then rename onto `path`: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp makes files private; models and reports are meant to be shared
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise UserError("disk full while writing; the previous version of the file is untouched", path) from err
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


WEIGHTS_NAME = "model.safetensors"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"


def model_state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as transformers writes it: tied copies left out, every tensor contiguous."""
    tied = getattr(model, "tied_weights", {})
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in tied}


def save_model_folder(model: torch.nn.Module, directory: str | Path) -> None:
    """config.json (with `architectures`) and model.safetensors, each written atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    state = model_state_for_saving(model)
    write_atomic(directory / WEIGHTS_NAME, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    model.config.save_pretrained(directory)


def weights_path(directory: str | Path) -> Path:
    """The weights file of an HF folder: model.safetensors, else pytorch_model.bin."""
    directory = Path(directory)
    for name in (WEIGHTS_NAME, PICKLE_WEIGHTS_NAME):
        if (directory / name).is_file():
            return directory / name
    raise UserError(f"no {WEIGHTS_NAME} or {PICKLE_WEIGHTS_NAME} in {directory}: not a model folder")


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """Weights of an HF folder: model.safetensors, or pytorch_model.bin read with weights_only=True."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = weights_path(directory)
    if path.name == PICKLE_WEIGHTS_NAME:
        return load_torch_file(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise UserError(f"corrupt or truncated weights file ({err})", path) from err


def load_torch_file(path: str | Path) -> Any:
    """`torch.load` with weights_only=True: a pickle that would call anything but tensor and container builders is
    refused (its code never runs), and a truncated or foreign file is a UserError, both naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message advises weights_only=False, which albertkit never does: name the blocked callable instead.
        blocked = re.search(r"GLOBAL ([\w.]+)", str(err))
        if blocked:
            raise UserError(f"refusing to load: the pickle would call {blocked.group(1)}; only tensors and plain "
                            "containers are accepted", path) from None
        raise UserError("not a PyTorch weights file (unreadable pickle)", path) from None
    except (RuntimeError, EOFError) as err:
        detail = str(err).splitlines()[0].split(". ")[0] if str(err) else "empty file"
        raise UserError(f"corrupt or truncated file ({detail})", path) from None


def check_tokenizer_matches(tokenizer: Any, config: Any, path: str | Path | None = None) -> None:
    """A tokenizer of another vocabulary size would index past the embeddings or silently shift every id."""
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(
            f"the tokenizer has {tokenizer.vocab_size} pieces but the model's vocabulary is {config.vocab_size}:"
            " use the tokenizer the model was trained with", path,
        )


def adapt_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename keys between a bare encoder (`embeddings.…`) and a model with heads (`albert.embeddings.…`)."""
    prefix = f"{model.base_model_prefix}."
    wants_prefix = any(k.startswith(prefix) for k in model.state_dict())
    has_prefix = any(k.startswith(prefix) for k in state)
    if wants_prefix and not has_prefix:
        return {prefix + k: v for k, v in state.items()}
    if has_prefix and not wants_prefix:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def load_model_folder(
    cls: type, directory: str | Path, weights: dict[str, torch.Tensor] | None = None, **config_overrides: Any
) -> torch.nn.Module:
    """Build `cls` from an HF folder's config.json and load its weights (`weights` when already read); warn about
    head weights left new."""
    from albertkit.config import AlbertConfig

    config = AlbertConfig.from_pretrained(directory)
    for key, value in config_overrides.items():
        if not hasattr(config, key):
            raise UserError(f"unknown config field {key!r}")
        setattr(config, key, value)
    model = cls(config)
    state = adapt_state_dict(read_weights(directory) if weights is None else weights, model)
    tied = getattr(model, "tied_weights", {})
    expected = set(model.state_dict())
    state = {k: v for k, v in state.items() if k in expected and k not in tied}
    missing = sorted(expected - set(state) - set(tied))
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(model.state_dict()[key].shape):
            raise UserError(
                f"weight {key} has shape {tuple(tensor.shape)} but the config asks for "
                f"{tuple(model.state_dict()[key].shape)}", Path(directory) / WEIGHTS_NAME,
            )
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    if missing:
        logger.warning("%s: newly initialised weights (not in %s): %s", cls.__name__, directory, ", ".join(missing))
    return model


ALBERTKIT_INFO = "albertkit.json"


def write_model_folder(model: torch.nn.Module, directory: str | Path, tokenizer: Any, info: dict[str, Any]) -> None:
    """A complete model folder: HF weights and config, the tokenizer, and `albertkit.json` (head, labels, summary)."""
    import json

    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    write_text_atomic(directory / ALBERTKIT_INFO, json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n")


def read_model_info(directory: str | Path) -> dict[str, Any]:
    """`albertkit.json` of a model folder ({} for a folder made by other tools)."""
    import json

    path = Path(directory) / ALBERTKIT_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


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
    from albertkit.config import AlbertConfig
    from albertkit.model import HEADS

    architectures = AlbertConfig.from_pretrained(directory).architectures
    # Without `architectures` the weights decide, read once here and handed on.
    weights = None if architectures else read_weights(directory)
    architecture = architectures[0] if architectures else architecture_of_weights(set(weights), default)
    cls = HEADS.get(architecture)
    if cls is None:
        raise UserError(f"unsupported architecture {architecture!r}; albertkit knows {', '.join(HEADS)}",
                        Path(directory) / "config.json")
    return load_model_folder(cls, directory, weights)
