"""Safe loading: weights with a pickle payload are refused before their code runs, damaged ones are one-line
errors, and the package loads pickles only with weights_only (checkpoints: tests/train/test_checkpoint_safety.py).

The payload of every malicious file here would create a marker file; each test asserts that it never appears.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import torch
from builders import build_model_folders
from payload import Payload
from safetensors.torch import load_file

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.modeling.model import AlbertForSequenceClassification, AlbertModel
from albertkit.modeling.weights import PICKLE_WEIGHTS_NAME, WEIGHTS_NAME

SOURCE = Path(__file__).resolve().parents[2] / "src" / "albertkit"


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


