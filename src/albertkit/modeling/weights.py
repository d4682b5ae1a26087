"""Weights and config of one model in an HF folder: model.safetensors (or pytorch_model.bin, read without running
code) beside config.json. Model classes come in as arguments, so this module sits below the model."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from albertkit.errors import UserError
from albertkit.io.atomic import write_atomic
from albertkit.modeling.config import AlbertConfig

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"


def model_state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as transformers writes it: tied copies left out, every tensor contiguous."""
    tied = getattr(model, "tied_weights", {})
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in tied}


def weights_path(directory: str | Path) -> Path:
    """The weights file of an HF folder: model.safetensors, else pytorch_model.bin."""
    directory = Path(directory)
    for name in (WEIGHTS_NAME, PICKLE_WEIGHTS_NAME):
        if (directory / name).is_file():
            return directory / name
    raise UserError(f"no {WEIGHTS_NAME} or {PICKLE_WEIGHTS_NAME} in {directory}: not a model folder")


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """Weights of an HF folder: model.safetensors, or pytorch_model.bin read with weights_only=True."""

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


def save_weights_and_config(model: torch.nn.Module, directory: str | Path) -> None:
    """config.json (with `architectures`) and model.safetensors, each written atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    state = model_state_for_saving(model)
    write_atomic(directory / WEIGHTS_NAME, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    model.config.save_pretrained(directory)


def load_weights_and_config(
    cls: type, directory: str | Path, weights: dict[str, torch.Tensor] | None = None, **config_overrides: Any
) -> torch.nn.Module:
    """Build `cls` from an HF folder's config.json and load its weights (`weights` when already read); warn about
    head weights left new."""
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
