"""Safe loading: pickles with a payload are refused before their code runs, only complete checkpoints are
resumed from, and the server binds loopback.

The payload of every malicious file here would create a marker file; each test asserts that it never appears.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from builders import build_model_folders
from safetensors.torch import load_file
from toy_training import CONFIG, Crash, ToyTask, new_model

from albertkit.cli import build_parser, main
from albertkit.errors import UserError
from albertkit.modeling.model import AlbertForSequenceClassification, AlbertModel
from albertkit.modeling.weights import PICKLE_WEIGHTS_NAME, WEIGHTS_NAME
from albertkit.serve import app as serve_app
from albertkit.train import checkpoints as ckpt
from albertkit.train.loop import train
from albertkit.train.settings import TrainSettings

SOURCE = Path(__file__).resolve().parents[2] / "src" / "albertkit"


class Payload:
    """Unpickling this calls open(marker, "w"): a harmless stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_model_folders(tmp_path_factory.mktemp("models"))


def pickled_model_folder(source: Path, target: Path, extra: dict | None = None) -> Path:
    """A copy of `source` whose weights are a pytorch_model.bin (torch.save), with `extra` entries added."""
    shutil.copytree(source, target)
    state = load_file(str(target / WEIGHTS_NAME))
    (target / WEIGHTS_NAME).unlink()
    torch.save({**state, **(extra or {})}, target / PICKLE_WEIGHTS_NAME)
    return target


def test_plain_pickled_weights_still_load(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = pickled_model_folder(folders["cls"], tmp_path / "bin")
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.no_grad():
        expected = AlbertForSequenceClassification.from_pretrained(folders["cls"]).eval()(ids).logits
        got = AlbertForSequenceClassification.from_pretrained(folder).eval()(ids).logits
    assert torch.equal(expected, got)


def test_weights_with_a_payload_are_refused_and_never_run(folders: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "payload-ran"
    folder = pickled_model_folder(folders["cls"], tmp_path / "evil", {"extra": Payload(marker)})
    with pytest.raises(UserError) as caught:
        AlbertModel.from_pretrained(folder)
    assert str(caught.value) == (f"{folder / PICKLE_WEIGHTS_NAME}: refusing to load: the pickle would call "
                                 "io.open; only tensors and plain containers are accepted")
    # Every command that loads a model refuses it the same way: one line, exit status 2.
    out = tmp_path / "vectors.npy"
    assert main(["embed", "--model", str(folder), "--input", str(folders["corpus"]), "--output", str(out)]) == 2
    assert capsys.readouterr().err == f"albertkit: error: {caught.value}\n"
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: data[: len(data) // 2], "corrupt or truncated file (PytorchStreamReader failed reading zip archive"),
    (lambda data: b"", "corrupt or truncated file (empty file)"),
    (lambda data: b"\x80\x02not a pickle at all" * 10, "not a PyTorch weights file (unreadable pickle)"),
])
def test_damaged_pickled_weights_are_one_line_errors(folders: dict[str, Path], tmp_path: Path, damage,
                                                     message: str) -> None:
    folder = pickled_model_folder(folders["cls"], tmp_path / "damaged")
    weights = folder / PICKLE_WEIGHTS_NAME
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(UserError) as caught:
        AlbertModel.from_pretrained(folder)
    assert str(caught.value).startswith(f"{weights}: {message}")
    assert "\n" not in str(caught.value)


def test_truncated_safetensors_is_a_one_line_error(folders: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "truncated"
    shutil.copytree(folders["cls"], folder)
    weights = folder / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["embed", "--model", str(folder), "--input", str(folders["corpus"]),
                 "--output", str(tmp_path / "vectors.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"albertkit: error: {weights}: corrupt or truncated weights file (") and err.count("\n") == 1


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


def test_source_loads_pickles_only_with_weights_only() -> None:
    """Every torch.load in the package passes weights_only=True; nothing calls pickle.load(s) directly."""
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            call = f"{owner}.{node.func.attr}"
            safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
            if (call == "torch.load" and not safe) or call in ("pickle.load", "pickle.loads"):
                offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno}: {call}")
    assert offenders == []


def test_serve_listens_on_loopback_by_default(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import uvicorn

    assert build_parser().parse_args(["serve", "--model", "m"]).host == "127.0.0.1"
    started: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kwargs: started.append(host))
    monkeypatch.delenv("ALBERTKIT_API_KEY", raising=False)
    caplog.set_level(logging.WARNING, logger=serve_app.__name__)
    assert main(["serve", "--model", str(folders["cls"])]) == 0
    assert started == ["127.0.0.1"] and "without --api-key" not in caplog.text
    # Another address without a key is allowed, with a warning; with a key, silently.
    assert main(["serve", "--model", str(folders["cls"]), "--host", "0.0.0.0"]) == 0
    assert "serving on 0.0.0.0 without --api-key: anyone who can reach this address" in caplog.text
    caplog.clear()
    assert main(["serve", "--model", str(folders["cls"]), "--host", "0.0.0.0", "--api-key", "k"]) == 0
    assert started == ["127.0.0.1", "0.0.0.0", "0.0.0.0"] and caplog.text == ""


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert serve_app._is_loopback(host) is loopback
