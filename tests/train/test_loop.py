"""The training loop on a synthetic task: exact resume, fallback past a corrupt checkpoint, faults."""

import errno
import json

import pytest
import torch
from safetensors.torch import load_file
from toy_training import CONFIG, Crash, ToyTask, new_model

from albertkit.errors import UserError
from albertkit.report.runlog import read_log
from albertkit.train import checkpoints as ckpt
from albertkit.train.events import TrainCallback
from albertkit.train.loop import train
from albertkit.train.settings import TrainSettings


def final_weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


def test_resume_after_crash_is_bitwise_identical(tmp_path):
    train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path / "straight")
    with pytest.raises(Crash):
        train(new_model(), ToyTask(crash_at_step=8), TrainSettings(**CONFIG), tmp_path / "crashed")
    assert [c.step for c in ckpt.list_checkpoints(tmp_path / "crashed" / "checkpoints")] == [3, 6]
    result = train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path / "crashed", resume=True)
    assert result.steps == 12
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(tmp_path / "crashed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    # The log continues without a jump: one train record per logged step, no duplicates.
    steps = [r["step"] for r in read_log(tmp_path / "crashed") if r["kind"] == "train"]
    assert steps == [2, 4, 6, 8, 10, 12]


def test_resume_skips_a_corrupted_checkpoint(tmp_path, caplog):
    with pytest.raises(Crash):
        train(new_model(), ToyTask(crash_at_step=8), TrainSettings(**CONFIG), tmp_path)
    newest = tmp_path / "checkpoints" / "step-00000006" / "model.safetensors"
    data = bytearray(newest.read_bytes())
    data[-5] ^= 0xFF
    newest.write_bytes(bytes(data))
    assert "corrupted" in ckpt.verify_checkpoint(newest.parent)
    found = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    assert found.step == 3
    assert "step-00000006" in caplog.text and "falling back" in caplog.text
    result = train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path, resume=True)
    assert result.steps == 12


def test_truncated_checkpoint_is_detected(tmp_path):
    with pytest.raises(Crash):
        train(new_model(), ToyTask(crash_at_step=5), TrainSettings(**CONFIG), tmp_path)
    state = tmp_path / "checkpoints" / "step-00000003" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    assert "truncated" in ckpt.verify_checkpoint(state.parent)


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    result = train(new_model(), ToyTask(nan_steps={2, 5}), TrainSettings(**CONFIG), tmp_path)
    assert result.skipped_steps == 2
    skipped = [r for r in read_log(tmp_path) if r["kind"] == "skipped"]
    assert [r["step"] for r in skipped] == [2, 5]
    assert all(torch.isfinite(t).all() for t in final_weights(tmp_path).values())


def test_consecutive_non_finite_steps_stop_the_run(tmp_path):
    config = TrainSettings(**{**CONFIG, "max_bad_steps": 3})
    with pytest.raises(UserError, match="3 consecutive steps with non-finite loss.*last good checkpoint is .*step-00000006"):
        train(new_model(), ToyTask(nan_steps={5, 6, 7, 8}), config, tmp_path)


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    real_save = ckpt.save_file

    def failing_save(state, path, metadata=None):
        if ".step-00000006.partial" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(state, path, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_file", failing_save)
    with pytest.raises(UserError, match=r"disk full.*previous checkpoint is intact at .*step-00000003"):
        train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path)
    assert ckpt.verify_checkpoint(tmp_path / "checkpoints" / "step-00000003") is None
    assert not list((tmp_path / "checkpoints").glob(".*.partial"))


def test_best_model_and_logs_written(tmp_path):
    result = train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path)
    assert (tmp_path / "best" / "model.safetensors").is_file()
    assert result.best_step in (4, 8, 12)
    records = read_log(tmp_path)
    kinds = {r["kind"] for r in records}
    assert {"start", "train", "eval", "checkpoint", "end"} <= kinds
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])["kind"] == "start"
    # keep_last=3: checkpoints 6, 9, 12 remain
    assert [c.step for c in ckpt.list_checkpoints(tmp_path / "checkpoints")] == [6, 9, 12]


class Recorder(TrainCallback):
    def __init__(self):
        self.calls = []

    def on_model(self, model):
        self.calls.append(("model", 0, type(model).__name__))

    def on_log(self, step, record):
        self.calls.append(("log", step, round(record["lr"], 6)))

    def on_evaluate(self, step, metrics):
        self.calls.append(("evaluate", step, sorted(metrics)))

    def on_save(self, step, path, what):
        self.calls.append((what, step, path.name))


def test_callbacks_see_each_log_evaluation_and_save(tmp_path):
    recorder = Recorder()
    model = new_model()
    result = train(model, ToyTask(), TrainSettings(**CONFIG), tmp_path, callbacks=[recorder])
    assert ("model", 0, type(model).__name__) in recorder.calls
    logged = [(step, lr) for kind, step, lr in recorder.calls if kind == "log"]
    records = [r for r in read_log(tmp_path) if r["kind"] == "train"]
    assert logged == [(r["step"], round(r["lr"], 6)) for r in records] and [s for s, _ in logged] == [2, 4, 6, 8, 10, 12]
    assert [c for c in recorder.calls if c[0] == "evaluate"] == [("evaluate", s, ["accuracy"]) for s in (4, 8, 12)]
    assert [(s, name) for kind, s, name in recorder.calls if kind == "checkpoint"] == [
        (s, f"step-{s:08d}") for s in (3, 6, 9, 12)]
    assert ("best", result.best_step, "best") in recorder.calls and recorder.calls[-1] == ("final", 12, "final")


def test_early_stopping_needs_a_metric(tmp_path):
    class NoMetric(ToyTask):
        metric_name = None

    with pytest.raises(UserError, match="early stopping needs a dev metric to watch, and this run has none"):
        train(new_model(), NoMetric(), TrainSettings(**{**CONFIG, "early_stopping_patience": 2}), tmp_path)
    assert not (tmp_path / "log.jsonl").exists()
