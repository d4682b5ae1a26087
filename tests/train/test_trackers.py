"""--report-to: TensorBoard, W&B (offline) and MLflow (file store) get the metrics, config and system info; a
resumed run continues the same tracked run; MLflow keeps the final model folder as an artifact."""

import json
import struct

import pytest
from toy_training import CONFIG, Crash, ToyTask, new_model

from albertkit.errors import UserError
from albertkit.train import trackers
from albertkit.train.events import TrainCallback
from albertkit.train.loop import train
from albertkit.train.settings import TrainSettings, load_settings


def crash_then_resume(run_dir, report_to):
    """A run that crashes after its step-6 checkpoint, then resumed to step 12; the trackers' saved ids."""
    with pytest.raises(Crash):
        train(new_model(), ToyTask(crash_at_step=8), TrainSettings(**CONFIG, report_to=report_to), run_dir)
    first = json.loads((run_dir / "checkpoints" / trackers.IDS_NAME).read_text())
    train(new_model(), ToyTask(), TrainSettings(**CONFIG, report_to=report_to), run_dir, resume=True)
    assert json.loads((run_dir / "checkpoints" / trackers.IDS_NAME).read_text()) == first
    return first


@pytest.mark.slow  # importing mlflow takes seconds
def test_mlflow_file_store_has_metrics_config_and_the_model(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_id = crash_then_resume(tmp_path / "run", "mlflow")["mlflow"]
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and len(client.search_runs([run.info.experiment_id])) == 1
    losses = {m.step for m in client.get_metric_history(run_id, "train/loss")}
    assert losses == {2, 4, 6, 8, 10, 12}  # both processes' records in one run
    assert [m.step for m in client.get_metric_history(run_id, "eval/accuracy")] == [4, 8, 12]
    assert run.data.metrics["end/steps"] == 12
    assert run.data.params["config.learning_rate"] == "0.01" and run.data.params["system.torch"]
    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert {"model/config.json", "model/model.safetensors"} <= artifacts


def wandb_records(path):
    """The protobuf records of an offline W&B run file (a LevelDB-style log of 32 KiB blocks after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, records, buffer = path.read_bytes(), 7, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        buffer = chunk if kind in (1, 2) else buffer + chunk  # full / first, then middle and last parts
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buffer)
            records.append(record)
    return records


@pytest.mark.slow  # W&B starts its service process
def test_wandb_offline_run_has_the_metrics_and_resumes_the_same_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_id = crash_then_resume(tmp_path / "run", "wandb")["wandb"]
    files = sorted((tmp_path / "run" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 2  # one per process, the same run id: `wandb sync` merges them
    history, config = [], {}
    for path in files:
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
            elif kind == "run":
                config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    assert sorted(h["step"] for h in history if "train/loss" in h) == [2, 4, 6, 8, 10, 12]
    assert [h["eval/accuracy"] for h in history if "eval/accuracy" in h][-1] == pytest.approx(
        next(h["end/accuracy"] for h in history if "end/accuracy" in h))
    assert config["config"]["learning_rate"] == 0.01 and config["system"]["torch"], config.keys()


def test_tensorboard_gets_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(new_model(), ToyTask(), TrainSettings(**CONFIG, report_to="tensorboard"), tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8, 10, 12]
    assert [e.step for e in events.Scalars("eval/accuracy")] == [4, 8, 12]
    assert not (tmp_path / "checkpoints" / trackers.IDS_NAME).exists()  # TensorBoard has no run id to keep


def test_none_reports_nowhere_and_a_failed_run_ends_its_callbacks(tmp_path):
    class Ends(TrainCallback):
        records = []

        def on_train_end(self, step, record):
            self.records.append((step, record["stopped_because"]))

    with pytest.raises(Crash):
        train(new_model(), ToyTask(crash_at_step=8), TrainSettings(**CONFIG, report_to="none"), tmp_path,
              callbacks=[Ends()])
    assert Ends.records == [(7, "error")] and not (tmp_path / "tensorboard").exists()


def test_report_to_values_are_checked(tmp_path, monkeypatch):
    assert TrainSettings(report_to=" wandb, mlflow,wandb").report_to == "wandb,mlflow"
    config = tmp_path / "c.yaml"
    config.write_text("seed: 1\nreport_to: wandb,comet\n")
    with pytest.raises(UserError, match=r"c.yaml:2: report_to takes auto, none or a comma list"):
        load_settings(TrainSettings, config)
    monkeypatch.setattr(trackers, "_installed", lambda name: name != "mlflow")
    assert trackers.resolve_report_to("auto") == ["tensorboard"]
    with pytest.raises(UserError, match=r"--report-to mlflow needs the mlflow package: pip install 'albertkit\[track\]'"):
        trackers.resolve_report_to("tensorboard,mlflow")
    monkeypatch.setattr(trackers, "_installed", lambda name: False)
    assert trackers.resolve_report_to("auto") == []
