"""Contrastive sentence-embedding training: supervised pairs raise Spearman on held-out pairs; SimCSE runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from builders import ADJECTIVES, build_model_folders, movie_sentences

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.modeling.config import AlbertConfig
from albertkit.report.runlog import read_log
from albertkit.train.contrastive import (
    ContrastiveSettings,
    read_sentence_pairs,
    similarity_spearman,
    train_sentence_embeddings,
)
from albertkit.train.settings import load_settings


def adjective(sentence: str) -> str:
    return next(word for word in sentence.split() if word in ADJECTIVES)


def write_pairs(path: Path, count: int, seed: int, positives_only: bool) -> None:
    """Pairs labeled 1 when both sentences use the same adjective: a similarity the random model cannot know."""
    rng = random.Random(seed)
    sentences = movie_sentences(count, seed)
    rows = []
    for a in sentences:
        pool = [s for s in sentences if adjective(s) == adjective(a) and s != a] if positives_only else sentences
        b = rng.choice(pool)
        rows.append(f"{a}\t{b}\t{int(adjective(a) == adjective(b))}")
    path.write_text("sentence1\tsentence2\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contrastive")
    folders = build_model_folders(root)
    write_pairs(root / "train.tsv", 400, seed=3, positives_only=True)
    write_pairs(root / "dev.tsv", 300, seed=4, positives_only=False)
    return {**folders, "train": root / "train.tsv", "dev": root / "dev.tsv", "root": root}


def test_supervised_pairs_raise_spearman(folders: dict[str, Path]) -> None:
    run = folders["root"] / "supervised"
    result, before = train_sentence_embeddings(
        folders["cls"], run, pairs=folders["train"], eval_pairs=folders["dev"],
        batch_size=32, learning_rate=1e-3, max_steps=24, eval_every=24, log_every=8,
    )
    assert result.steps == 24
    dev = read_sentence_pairs(folders["dev"])
    assert before == pytest.approx(similarity_spearman(Encoder(folders["cls"]), dev), abs=1e-9)
    after = similarity_spearman(Encoder(run / "final"), dev)
    assert after == pytest.approx(result.final_metrics["spearman"], abs=1e-6)
    assert after > before + 0.15, (before, after)
    info = json.loads((run / "final" / "albertkit.json").read_text())
    assert info["task"] == "sentence-embeddings" and info["mode"] == "supervised" and info["pooling"] == "mean"
    config = AlbertConfig.from_pretrained(run / "final")
    assert config.architectures == ["AlbertModel"] and config.hidden_dropout_prob == 0.0  # training noise not kept


def test_cli_unsupervised_simcse_changes_the_encoder(folders: dict[str, Path]) -> None:
    run = folders["root"] / "simcse"
    assert main(["embed-train", "--model", str(folders["cls"]), "--out", str(run), "--sentences",
                 str(folders["corpus"]), "--batch-size", "32", "--lr", "1e-4", "--max-steps", "4"]) == 0
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logged if r["kind"] == "train"]
    assert losses and all(0 < loss < np.log(32) + 1 for loss in losses)  # InfoNCE over 32 candidates
    texts = movie_sentences(5, seed=9)
    assert not np.allclose(Encoder(run / "final").encode(texts), Encoder(folders["cls"]).encode(texts), atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_trained_model_is_a_sentence_transformers_model(folders: dict[str, Path], tmp_path: Path, pooling) -> None:
    from sentence_transformers import SentenceTransformer

    run = tmp_path / "run"
    assert main(["embed-train", "--model", str(folders["cls"]), "--out", str(run), "--sentences",
                 str(folders["corpus"]), "--batch-size", "32", "--max-steps", "2", "--pooling", pooling,
                 "--report-to", "none", "-q"]) == 0
    texts = movie_sentences(7, seed=11) + [" ".join(movie_sentences(80))]  # the last one is cut at 128 positions
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["embed", "--model", str(run / "final"), "--input", str(tmp_path / "texts.txt"), "--output",
                 str(tmp_path / "v.npy"), "--pooling", pooling, "-q"]) == 0
    got = SentenceTransformer(str(run / "final"), device="cpu").encode(texts, convert_to_numpy=True)
    assert np.abs(got - np.load(tmp_path / "v.npy")).max() <= 1e-5
    modules = json.loads((run / "final" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling_config = json.loads((run / "final" / "1_Pooling" / "config.json").read_text())
    assert pooling_config["pooling_mode_mean_tokens"] is (pooling == "mean")
    assert pooling_config["pooling_mode_cls_token"] is (pooling == "cls")


def test_bad_inputs(folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="either sentences .* or labeled pairs"):
        train_sentence_embeddings(folders["cls"], tmp_path / "run")
    with pytest.raises(UserError, match="fewer than one batch of 512"):
        train_sentence_embeddings(folders["cls"], tmp_path / "run", sentences=folders["corpus"], batch_size=512)
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\t1\nc\td\tmaybe\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv:2: score 'maybe' is not a number"):
        read_sentence_pairs(bad)


def test_cli_takes_a_config_writes_the_effective_one_and_resumes(folders: dict[str, Path]) -> None:
    run = folders["root"] / "configured"
    config = folders["root"] / "simcse.yaml"
    config.write_text("learning_rate: 0.0003\nbatch_size: 32\ntemperature: 0.1\nsave_every: 2\n")
    args = ["embed-train", "--model", str(folders["cls"]), "--out", str(run), "--sentences", str(folders["corpus"]),
            "--config", str(config), "--lr", "1e-4"]
    assert main([*args, "--max-steps", "4"]) == 0
    saved = load_settings(ContrastiveSettings, run / "config.yaml")
    assert (saved.learning_rate, saved.batch_size, saved.temperature, saved.max_steps) == (1e-4, 32, 0.1, 4)
    assert f"# sentences: {folders['corpus']}" in (run / "config.yaml").read_text()
    # --resume continues from the checkpoint of step 4 to the new limit; the log keeps each record once.
    assert main([*args, "--max-steps", "6", "--resume"]) == 0
    assert [r["step"] for r in read_log(run) if r["kind"] == "train"] == [4, 6]
    assert [r["step"] for r in read_log(run) if r["kind"] == "start"] == [0, 4]
    assert json.loads((run / "final" / "albertkit.json").read_text())["summary"]["steps"] == 6
    assert (run / "report.html").is_file()
