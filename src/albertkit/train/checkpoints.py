"""Training checkpoints: model, optimizer, scheduler, RNG and data position, written atomically and verified.

Layout: RUN_DIR/checkpoints/step-00000100/{model.safetensors, config.json, trainer_state.pt, manifest.json};
under FSDP `sharded/` (torch.distributed.checkpoint's files) takes the place of model.safetensors.
A checkpoint exists only once its folder has been renamed into place, after every file was fsynced;
`manifest.json` holds each file's size and sha256, so a truncated or corrupted one is detected on resume.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from albertkit.errors import UserError
from albertkit.io.atomic import atomic_folder, file_sha256, partial_folder, write_text_atomic
from albertkit.io.run_folder import Checkpoint, checkpoint_path, list_checkpoints
from albertkit.modeling.weights import load_torch_file, model_state_for_saving

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.pt"
SHARDED_FOLDER = "sharded"  # FSDP: torch.distributed.checkpoint's files, one shard per process

def _sha256(path: Path) -> str:
    return file_sha256(path).hexdigest()


def save_checkpoint(
    checkpoints_dir: Path, step: int, model: torch.nn.Module, trainer_state: dict[str, Any], keep_last: int
) -> Path:
    """Write checkpoint `step` atomically, then delete all but the newest `keep_last`."""

    def write(tmp: Path) -> None:
        save_file(model_state_for_saving(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})

    return _save(checkpoints_dir, step, model, trainer_state, keep_last, write)


def save_sharded_checkpoint(
    checkpoints_dir: Path, step: int, model: torch.nn.Module, trainer_state: dict[str, Any], keep_last: int,
    write_shards: Callable[[Path], None], is_main: bool, barrier: Callable[[], None],
) -> Path:
    """FSDP: every process calls this; each writes its shards (`write_shards(folder)`, collective) into
    SHARDED_FOLDER of the checkpoint that rank 0 builds and renames into place, as `save_checkpoint` does."""
    final = checkpoint_path(checkpoints_dir, step)
    if not is_main:
        barrier()  # rank 0 has made the partial folder
        write_shards(partial_folder(final) / SHARDED_FOLDER)
        barrier()  # rank 0 has renamed it into place
        return final

    def write(tmp: Path) -> None:
        barrier()
        write_shards(tmp / SHARDED_FOLDER)

    try:
        return _save(checkpoints_dir, step, model, trainer_state, keep_last, write)
    finally:
        barrier()


def _save(checkpoints_dir: Path, step: int, model: torch.nn.Module, trainer_state: dict[str, Any], keep_last: int,
          write_weights: Callable[[Path], None]) -> Path:
    final = checkpoint_path(checkpoints_dir, step)
    try:
        with atomic_folder(final, MANIFEST, "checkpoint") as tmp:
            write_weights(tmp)
            model.config.save_pretrained(tmp)
            torch.save(trainer_state, tmp / TRAINER_STATE)
            files = {p.relative_to(tmp).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
                     for p in sorted(tmp.rglob("*")) if p.is_file()}
            write_text_atomic(tmp / MANIFEST, json.dumps({"step": step, "files": files}, indent=2))
    except OSError as err:
        previous = latest_checkpoint(checkpoints_dir, verify=False)
        kept = f"; the previous checkpoint is intact at {previous.path}" if previous else ""
        reason = "disk full" if err.errno == errno.ENOSPC else err.strerror or str(err)
        raise UserError(f"cannot write checkpoint step {step} ({reason}){kept}", checkpoints_dir) from err
    for old in list_checkpoints(checkpoints_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def verify_checkpoint(path: Path) -> str | None:
    """None when every file matches the manifest's size and sha256, else what is wrong."""
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return "missing or unreadable manifest.json"
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != expected["size"]:
            return f"{name} is truncated ({file.stat().st_size} bytes, expected {expected['size']})"
        if _sha256(file) != expected["sha256"]:
            return f"{name} is corrupted (sha256 mismatch)"
    return None


def latest_checkpoint(checkpoints_dir: Path, verify: bool = True) -> Checkpoint | None:
    """The newest checkpoint that passes verification; each bad one is reported and skipped."""
    for checkpoint in reversed(list_checkpoints(checkpoints_dir)):
        problem = verify_checkpoint(checkpoint.path) if verify else None
        if problem is None:
            return checkpoint
        logger.warning("skipping checkpoint %s: %s; falling back to an older one", checkpoint.path, problem)
    return None


def load_trainer_state(checkpoint: Checkpoint) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
    """(model weights, trainer state); both read without unpickling code. A sharded (FSDP) checkpoint has no
    whole weights: None, and its SHARDED_FOLDER is read by every process (`StepEngine.load_sharded`)."""
    weights_file = checkpoint.path / "model.safetensors"
    weights = load_file(str(weights_file)) if weights_file.is_file() else None
    state = load_torch_file(checkpoint.path / TRAINER_STATE)
    return weights, state
