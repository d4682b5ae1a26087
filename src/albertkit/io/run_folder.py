"""The layout of a training run folder, read by the trainer (to resume) and by the report (to list outputs).

RUN_DIR/checkpoints/step-00000100/ holds one completed checkpoint; half-written ones are hidden
`.step-….partial` folders (see io.atomic.atomic_folder) and are never listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_PREFIX = "step-"


@dataclass
class Checkpoint:
    path: Path
    step: int


def checkpoint_path(checkpoints_dir: Path, step: int) -> Path:
    return checkpoints_dir / f"{CHECKPOINT_PREFIX}{step:08d}"


def list_checkpoints(checkpoints_dir: Path) -> list[Checkpoint]:
    """Completed checkpoints, oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        try:
            found.append(Checkpoint(path, int(path.name[len(CHECKPOINT_PREFIX):])))
        except ValueError:
            continue
    return sorted(found, key=lambda c: c.step)
