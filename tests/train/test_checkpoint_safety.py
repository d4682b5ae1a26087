"""Only complete, untampered checkpoints are resumed from; a trainer state with a pickle payload is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from payload import Payload
from safetensors.torch import load_file
from toy_training import CONFIG, Crash, ToyTask, new_model

from albertkit.errors import UserError
from albertkit.modeling.weights import WEIGHTS_NAME
from albertkit.train import checkpoints as ckpt
from albertkit.train.loop import train
from albertkit.train.settings import TrainSettings


def crashed_run(run_dir: Path) -> Path:
    """A toy training run that crashed after its step-3 and step-6 checkpoints; returns the step-6 folder."""
    with pytest.raises(Crash):
        train(new_model(), ToyTask(crash_at_step=8), TrainSettings(**CONFIG), run_dir)
    return run_dir / "checkpoints" / "step-00000006"


def plant_payload(checkpoint: Path, marker: Path, update_manifest: bool) -> None:
    """Add a payload to trainer_state.pt; with `update_manifest`, also forge the manifest's size and sha256."""
    state_file = checkpoint / ckpt.TRAINER_STATE
    state = torch.load(state_file, weights_only=True)
    torch.save({**state, "extra": Payload(marker)}, state_file)
    if update_manifest:
        manifest = json.loads((checkpoint / ckpt.MANIFEST).read_text())
        manifest["files"][ckpt.TRAINER_STATE] = {"size": state_file.stat().st_size,
                                                 "sha256": ckpt._sha256(state_file)}
        (checkpoint / ckpt.MANIFEST).write_text(json.dumps(manifest))


def test_resume_refuses_a_trainer_state_with_a_payload(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    checkpoint = crashed_run(tmp_path / "run")
    plant_payload(checkpoint, marker, update_manifest=True)  # a forged manifest: verification passes
    assert ckpt.verify_checkpoint(checkpoint) is None
    with pytest.raises(UserError, match=r"step-00000006/trainer_state.pt: refusing to load: the pickle would call "
                                        r"io.open"):
        train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path / "run", resume=True)
    assert not marker.exists()


def test_resume_skips_a_tampered_checkpoint_without_running_it(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "payload-ran"
    checkpoint = crashed_run(tmp_path / "run")
    plant_payload(checkpoint, marker, update_manifest=False)  # the manifest's sha256 no longer matches
    capsys.readouterr()
    result = train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path / "run", resume=True)
    assert result.steps == 12
    assert f"skipping checkpoint {checkpoint}: trainer_state.pt is" in caplog.text
    assert f"resuming from {checkpoint.with_name('step-00000003')} (step 3)" in capsys.readouterr().out
    assert not marker.exists()


def test_a_checkpoint_write_killed_before_its_rename_is_never_loaded(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path / "straight")
    rename = os.replace

    def killed_at_step_6(source, target):
        if Path(source).name == ".step-00000006.partial":
            raise Crash  # the process dies with every file of step 6 written, before the folder is renamed
        rename(source, target)

    monkeypatch.setattr(os, "replace", killed_at_step_6)
    with pytest.raises(Crash):
        train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path / "killed")
    monkeypatch.undo()
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [".step-00000006.partial", "step-00000003"]
    assert [c.step for c in ckpt.list_checkpoints(checkpoints)] == [3]
    result = train(new_model(), ToyTask(), TrainSettings(**CONFIG), tmp_path / "killed", resume=True)
    assert result.steps == 12 and not list(checkpoints.glob(".*.partial"))
    straight, resumed = (load_file(str(tmp_path / run / "final" / WEIGHTS_NAME)) for run in ("straight", "killed"))
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
