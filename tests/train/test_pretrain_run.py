"""`albertkit pretrain run` end to end: HF-loadable result, DDP equals one process, SIGKILL then exact resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import sigkill_after_checkpoint
from safetensors.torch import load_file

from albertkit.cli import main
from albertkit.report.runlog import read_log
from albertkit.train.pretrain import PretrainSettings
from albertkit.train.settings import load_settings

ALBERTKIT = [sys.executable, "-m", "albertkit.cli"]
RUN_FLAGS = ["--preset", "tiny", "--batch-size", "8", "--log-every", "1", "--seed", "3", "--lr", "1e-3"]


def run_flags(prepared: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "run", "--data", str(prepared / "data"), "--out", str(out), *RUN_FLAGS, *extra]


def small_model_config(tmp_path: Path) -> str:
    """A config file shrinking the tiny preset further, so the tests stay quick; no dropout, so that one
    process and two (which draw different dropout masks for the same rows) compute the same thing."""
    path = tmp_path / "small.yaml"
    path.write_text(
        "model:\n  num_hidden_layers: 2\n  hidden_size: 64\n  intermediate_size: 128\n"
        "  num_attention_heads: 2\n  embedding_size: 32\n  classifier_dropout_prob: 0.0\n"
    )
    return str(path)


def test_pretraining_writes_a_folder_transformers_loads(prepared_corpus, tmp_path):
    import transformers

    out = tmp_path / "run"
    assert (
        main(
            run_flags(
                prepared_corpus,
                out,
                "--max-steps",
                "6",
                "--eval-every",
                "3",
                "--config",
                small_model_config(tmp_path),
            )
        )
        == 0
    )
    model = transformers.AlbertForPreTraining.from_pretrained(out / "final")
    assert model.config.hidden_size == 64
    evals = [r for r in read_log(out) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    assert 0 <= evals[-1]["sop_accuracy"] <= 1 and evals[-1]["mlm_loss"] > 0
    losses = [r["loss"] for r in read_log(out) if r["kind"] == "train"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    tokenizer = transformers.AlbertTokenizer.from_pretrained(out / "final")
    assert tokenizer("the cat")["input_ids"][0] == 2
    # config.yaml holds every setting of the run (defaults, file and flags) and serves as --config again.
    saved = load_settings(PretrainSettings, out / "config.yaml")
    assert (saved.preset, saved.batch_size, saved.learning_rate, saved.seed, saved.max_steps) == ("tiny", 8, 1e-3, 3, 6)
    assert saved.model["hidden_size"] == 64 and saved.optimizer == "adamw"
    assert (out / "report.html").is_file()


def test_max_seq_length_above_positions_is_a_user_error(prepared_corpus, tmp_path, capsys):
    code = main(run_flags(prepared_corpus, tmp_path / "run", "--max-steps", "1", "--max-seq-length", "1024"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "max_seq_length 1024 is above the model's max_position_embeddings 512" in err


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(prepared_corpus, tmp_path):
    config = small_model_config(tmp_path)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert main(run_flags(prepared_corpus, single, "--max-steps", "4", "--config", config)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "albertkit.cli",
        *run_flags(prepared_corpus, ddp, "--max-steps", "4", "--config", config),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    start = next(r for r in read_log(ddp) if r["kind"] == "start")
    assert start["world_size"] == 2
    one = [r["loss"] for r in read_log(single) if r["kind"] == "train"]
    two = [r["loss"] for r in read_log(ddp) if r["kind"] == "train"]
    assert len(one) == len(two) == 4
    # Step 1 is the same global batch; later steps also depend on identical averaged gradients.
    assert one == pytest.approx(two, rel=1e-4, abs=1e-4)
    a, b = (
        load_file(str(single / "final" / "model.safetensors")),
        load_file(str(ddp / "final" / "model.safetensors")),
    )
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_sigkill_then_resume_gives_bitwise_identical_weights(prepared_corpus, tmp_path):
    config = small_model_config(tmp_path)
    flags = ("--max-steps", "12", "--save-every", "3", "--config", config)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(run_flags(prepared_corpus, straight, *flags)) == 0

    sigkill_after_checkpoint(run_flags(prepared_corpus, killed, *flags), killed, step=6)

    assert main(run_flags(prepared_corpus, killed, *flags, "--resume")) == 0
    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(killed / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_log(killed) if r["kind"] == "train"]
    assert steps == sorted(set(steps)) == list(range(1, 13))
    assert json.loads((killed / "final" / "albertkit.json").read_text())["summary"]["steps"] == 12


def test_pretraining_reads_slices_prepared_apart(prepared_corpus, tmp_path, monkeypatch):
    from albertkit.data import prepare

    monkeypatch.setattr(prepare, "CHUNK_CHARS", 2000)
    slices = [tmp_path / f"slice{i}" for i in range(2)]
    for i, folder in enumerate(slices):
        assert main(["pretrain", "prepare", "--input", str(prepared_corpus / "corpus.txt"), "--tokenizer",
                     str(prepared_corpus / "tok"), "--out", str(folder), "--max-seq-length", "64", "--workers", "1",
                     "--num-shards", "2", "--shard-index", str(i)]) == 0
    out = tmp_path / "run"
    args = ["pretrain", "run", "--data", *map(str, slices), "--out", str(out), *RUN_FLAGS, "--max-steps", "2",
            "--config", small_model_config(tmp_path)]
    assert main(args) == 0
    start = next(r for r in read_log(out) if r["kind"] == "start")
    assert start["data"] == " ".join(map(str, slices))
    assert len([r for r in read_log(out) if r["kind"] == "train"]) == 2


def test_corpus_warm_start_lowers_the_first_loss(prepared_corpus, tmp_path):
    first_losses = {}
    for name, extra in {"random": ["--no-unigram-bias", "--embedding-init", "random"],
                        "warm": ["--unigram-bias", "--embedding-init", "ppmi", "--sop-weight", "0.5"]}.items():
        out = tmp_path / name
        assert main(run_flags(prepared_corpus, out, "--max-steps", "1", "--config", small_model_config(tmp_path),
                              *extra)) == 0
        first_losses[name] = next(r["loss"] for r in read_log(out) if r["kind"] == "train")
    saved = load_settings(PretrainSettings, tmp_path / "warm" / "config.yaml")
    assert (saved.unigram_bias, saved.embedding_init, saved.sop_weight) == (True, "ppmi", 0.5)
    # The MLM loss starts near the unigram entropy instead of log(vocabulary); SOP's is halved.
    assert first_losses["warm"] < first_losses["random"] - 0.5
