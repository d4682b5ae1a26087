"""The machine-readable log of a run: RUN_DIR/log.jsonl (TensorBoard and other trackers: train/trackers.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

LOG_NAME = "log.jsonl"


class RunLog:
    """Appends one JSON object per event to RUN_DIR/log.jsonl."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.enabled = enabled
        self.path = run_dir / LOG_NAME
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, kind: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of a run's log, skipping a last line cut short by a crash."""
    path = Path(run_dir) / LOG_NAME
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
