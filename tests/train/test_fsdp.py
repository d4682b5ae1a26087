"""`--strategy fsdp` (FSDP2) with 2 gloo processes on CPU, with gradient checkpointing: the losses and weights of
DDP, sharded checkpoints that resume to the bit (on two processes) and closely (on one), the HF folder gathered on
rank 0, and DDP's whole-weight checkpoints refused by an FSDP resume."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from albertkit.cli import main
from albertkit.report.runlog import read_log

FLAGS = ["--preset", "tiny", "--batch-size", "8", "--log-every", "1", "--seed", "3", "--lr", "1e-3",
         "--max-steps", "4", "--save-every", "2"]
SMALL = ("model:\n  num_hidden_layers: 2\n  hidden_size: 64\n  intermediate_size: 128\n  num_attention_heads: 2\n"
         "  embedding_size: 32\n  classifier_dropout_prob: 0.0\n")


def pretrain_args(prepared: Path, out: Path, config: Path, *extra: str) -> list[str]:
    return ["pretrain", "run", "--data", str(prepared / "data"), "--out", str(out), *FLAGS, "--config", str(config),
            *extra]


def torchrun(args: list[str]) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547",
               "-m", "albertkit.cli", *args]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_log(run) if r["kind"] == "train"]


def test_fsdp_matches_ddp_and_resumes_exactly(prepared_corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    ddp, fsdp, resumed = tmp_path / "ddp", tmp_path / "fsdp", tmp_path / "resumed"
    torchrun(pretrain_args(prepared_corpus, ddp, config))
    # FSDP with gradient checkpointing (the two compose): still DDP's losses.
    torchrun(pretrain_args(prepared_corpus, fsdp, config, "--strategy", "fsdp", "--gradient-checkpointing"))

    assert len(losses(fsdp)) == 4 and losses(fsdp) == pytest.approx(losses(ddp), rel=1e-5, abs=1e-5)
    a, b = load_file(str(ddp / "final" / "model.safetensors")), load_file(str(fsdp / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:  # the gathered HF folder holds whole tensors, equal to DDP's
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=1e-4)
    step2 = fsdp / "checkpoints" / "step-00000002"
    assert sorted(p.name for p in (step2 / "sharded").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert not (step2 / "model.safetensors").exists()

    # Lose the last checkpoint and the final folder, resume from step 2 on two processes: the same weights.
    shutil.copytree(fsdp, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-00000004")
    shutil.rmtree(resumed / "final")
    torchrun(pretrain_args(prepared_corpus, resumed, config, "--strategy", "fsdp", "--gradient-checkpointing",
                           "--resume"))
    c = load_file(str(resumed / "final" / "model.safetensors"))
    assert all(torch.equal(b[key], c[key]) for key in b)
    assert losses(resumed) == losses(fsdp)

    # The shards also resume on one process (DDP strategy): the same weights within float tolerance.
    single = tmp_path / "single"
    shutil.copytree(resumed, single)
    shutil.rmtree(single / "checkpoints" / "step-00000004")
    shutil.rmtree(single / "final")
    assert main(pretrain_args(prepared_corpus, single, config, "--resume")) == 0
    d = load_file(str(single / "final" / "model.safetensors"))
    for key in b:
        torch.testing.assert_close(d[key], b[key], atol=1e-5, rtol=1e-4)
    assert losses(single) == pytest.approx(losses(fsdp), rel=1e-5)

    # FSDP cannot resume DDP's whole-weight checkpoints: one line, exit 2.
    shutil.rmtree(ddp / "checkpoints" / "step-00000004")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29548",
               "-m", "albertkit.cli", *pretrain_args(prepared_corpus, ddp, config, "--strategy", "fsdp", "--resume")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "holds whole weights (written with --strategy ddp): resume it with --strategy ddp" in done.stderr
