"""Experiment trackers (`--report-to tensorboard,wandb,mlflow`): training callbacks that send a run's metrics,
its effective config and system info to TensorBoard, Weights & Biases or MLflow, and (MLflow) the final model
folder as an artifact.

The client libraries are optional extras (`pip install albertkit[track]`), imported only when a tracker is
asked for. Each tracker's run id is kept in RUN_DIR/checkpoints/trackers.json, so that `--resume` continues
the same tracked run. Metrics are named `train/loss`, `eval/accuracy`, ... with the optimizer step as x-axis.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.train.events import TrainCallback

TRACKERS = ("tensorboard", "wandb", "mlflow")
_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
IDS_NAME = "trackers.json"


def check_report_to(value: str) -> str:
    """`value` if it is `auto`, `none` or a comma list of TRACKERS (ValueError otherwise)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if value.strip() in ("auto", "none"):
        return value.strip()
    unknown = [name for name in names if name not in TRACKERS]
    if unknown or not names:
        raise ValueError(f"report_to takes auto, none or a comma list of {', '.join(TRACKERS)}, not {value!r}")
    return ",".join(dict.fromkeys(names))


def resolve_report_to(value: str) -> list[str]:
    """The trackers `value` names: `auto` is tensorboard when it is installed, `none` none. A tracker whose
    library is missing is a UserError saying what to install."""
    value = check_report_to(value)
    if value == "none":
        return []
    if value == "auto":
        return ["tensorboard"] if _installed("tensorboard") else []
    names = value.split(",")
    missing = [name for name in names if not _installed(name)]
    if missing:
        raise UserError(f"--report-to {missing[0]} needs the {_MODULES[missing[0]]} package: "
                        "pip install 'albertkit[track]'")
    return names


def _installed(name: str) -> bool:
    return importlib.util.find_spec(_MODULES[name]) is not None


def system_info() -> dict[str, Any]:
    """Where the run ran: versions, CPU count and accelerator."""
    from albertkit import __version__

    info = {"albertkit": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count())
    return info


def _scalars(values: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: nested config as the flat parameters MLflow takes."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _TensorBoard:
    def __init__(self, run_dir: Path, config: dict[str, Any], run_id: str | None):
        from torch.utils.tensorboard import SummaryWriter

        self.run_id = None
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_model(self, path: Path) -> None:
        pass

    def close(self, failed: bool) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, run_dir: Path, config: dict[str, Any], run_id: str | None):
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "albertkit"), name=run_dir.resolve().name,
                              dir=str(run_dir), config=config, id=run_id, resume="allow" if run_id else None,
                              reinit="create_new")
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")  # a resumed run may repeat steps past its checkpoint
        self.run_id = self.run.id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log({"step": step, **metrics})

    def log_model(self, path: Path) -> None:
        pass  # a W&B artifact would upload the weights on every run; the run folder keeps them

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class _Mlflow:
    def __init__(self, run_dir: Path, config: dict[str, Any], run_id: str | None):
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self._metric = Metric
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:  # MLflow 3 refuses a file store unless told it is wanted
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "albertkit")
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            run_id = self.client.create_run(experiment_id, run_name=run_dir.resolve().name).info.run_id
            params = [Param(key, str(value)[:6000]) for key, value in _flat(config).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                self.client.log_batch(run_id, params=params[start:start + 100])
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._metric(re.sub(r"[^\w\-. /]", "_", key), value, now, step)
                                                    for key, value in metrics.items()])

    def log_model(self, path: Path) -> None:
        self.client.log_artifacts(self.run_id, str(path), artifact_path="model")

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


_CLASSES = {"tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _Mlflow}


class TrackerCallback(TrainCallback):
    """Sends the run to the trackers `names` (from `resolve_report_to`); created by the loop on the main process.
    `resume` continues the runs whose ids RUN_DIR/checkpoints/trackers.json holds."""

    def __init__(self, names: list[str], run_dir: str | Path, resume: bool = False):
        self.names, self.run_dir, self.resume = names, Path(run_dir), resume
        self.trackers: dict[str, Any] = {}

    @property
    def ids_path(self) -> Path:
        return self.run_dir / "checkpoints" / IDS_NAME

    def on_train_begin(self, step: int, record: dict[str, Any]) -> None:
        saved = json.loads(self.ids_path.read_text()) if self.resume and self.ids_path.is_file() else {}
        config = {**record, "system": system_info()}
        for name in self.names:
            self.trackers[name] = _CLASSES[name](self.run_dir, config, saved.get(name))
        ids = {name: tracker.run_id for name, tracker in self.trackers.items() if tracker.run_id}
        if ids:
            self.ids_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.ids_path, json.dumps(ids, indent=2) + "\n")

    def _log(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        metrics = {f"{kind}/{key}": value for key, value in _scalars(values).items()}
        for tracker in self.trackers.values():
            tracker.log(step, metrics)

    def on_log(self, step: int, record: dict[str, Any]) -> None:
        self._log("train", step, record)

    def on_evaluate(self, step: int, metrics: dict[str, Any]) -> None:
        self._log("eval", step, metrics)

    def on_save(self, step: int, path: Path, what: str) -> None:
        if what == "final":
            for tracker in self.trackers.values():
                tracker.log_model(path)

    def on_train_end(self, step: int, record: dict[str, Any]) -> None:
        failed = record.get("stopped_because") == "error"
        if not failed:
            self._log("end", step, record)
        for tracker in self.trackers.values():
            tracker.close(failed)
        self.trackers = {}
