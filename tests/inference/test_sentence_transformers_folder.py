"""`embed --save-sentence-transformers`: sentence_transformers.SentenceTransformer loads the folder and gives the
embeddings `albertkit embed` writes (1e-5), for every pooling, with and without normalization, and for both
tokenizer kinds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import TINY, movie_sentences
from conftest import write_bert_vocab
from huggingface_hub import ModelCard
from sentence_transformers import SentenceTransformer

from albertkit.cli import main
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.folder import update_model_card, write_model_folder
from albertkit.modeling.model import AlbertForSequenceClassification, AlbertModel
from albertkit.tokenization.loading import load_tokenizer

# A text longer than max_position_embeddings: both sides must cut it the same way.
TEXTS = ["the film is wonderful .", "boring", "Our HERO feels dull, at times!", " ".join(movie_sentences(120)),
         "this movie was dull from start to finish despite the cast ."]


@pytest.fixture(scope="module")
def wordpiece_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier over a BERT vocab.txt (the community Chinese checkpoints' tokenizer) with 64 positions."""
    folder = tmp_path_factory.mktemp("wordpiece")
    texts = ["我爱北京天安门 and I love NLP", "这部电影很好看", "价格是１２３４５元", *movie_sentences(200)]
    write_bert_vocab(texts, folder, vocab_size=400)
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(3)
    model = AlbertForSequenceClassification(AlbertConfig.from_preset(
        "tiny", vocab_size=tokenizer.vocab_size, pad_token_id=0, **{**TINY, "max_position_embeddings": 64}))
    write_model_folder(model, folder, tokenizer, {"task": "init"})
    return folder


def albertkit_embed(model: Path, tmp_path: Path, texts: list[str], *flags: str) -> np.ndarray:
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["embed", "--model", str(model), "--input", str(source), "--output", str(tmp_path / "v.npy"),
                 *flags]) == 0
    return np.load(tmp_path / "v.npy")


def save(model: Path, out: Path, *flags: str) -> int:
    return main(["embed", "--save-sentence-transformers", str(out), "--model", str(model), *flags])


@pytest.mark.parametrize("flags", [(), ("--no-normalize",), ("--pooling", "cls"), ("--pooling", "pooler"),
                                   ("--pooling", "pooler", "--no-normalize")])
def test_sentence_transformers_gives_albertkit_embeddings(model_folders, tmp_path, flags) -> None:
    assert save(model_folders["cls"], tmp_path / "st", *flags) == 0
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    got = st.encode(TEXTS, batch_size=2, convert_to_numpy=True)
    expected = albertkit_embed(model_folders["cls"], tmp_path, TEXTS, *flags)
    assert got.shape == expected.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert st.max_seq_length == 512


def test_wordpiece_tokenizer_and_short_positions(wordpiece_model, tmp_path) -> None:
    texts = ["我爱北京天安门 and I love NLP 2023年", "这部电影很好看！", "价格是１２３４５元，ＯＫ吗？", "很" * 100]
    assert save(wordpiece_model, tmp_path / "st", "--pooling", "cls") == 0
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    assert st.max_seq_length == 64  # the model's max_position_embeddings, as albertkit truncates
    np.testing.assert_allclose(st.encode(texts, convert_to_numpy=True),
                               albertkit_embed(wordpiece_model, tmp_path, texts, "--pooling", "cls"), atol=1e-5)


def test_layout_and_card(model_folders, tmp_path) -> None:
    out = tmp_path / "st"
    assert save(model_folders["cls"], out, "--pooling", "pooler") == 0
    modules = json.loads((out / "modules.json").read_text())
    assert [(m["path"], m["type"].rsplit(".", 1)[1]) for m in modules] == [
        ("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense"), ("3_Normalize", "Normalize")]
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_cls_token"] and not pooling["pooling_mode_mean_tokens"]
    assert pooling["word_embedding_dimension"] == 64
    assert json.loads((out / "config.json").read_text())["architectures"] == ["AlbertModel"]
    assert AlbertModel.from_pretrained(out).pooler is not None  # also an albertkit / transformers model folder
    card = ModelCard.load(out / "README.md").data
    assert card.library_name == "sentence-transformers" and card.pipeline_tag == "sentence-similarity"
    assert "sentence-transformers" in card.tags and not card.eval_results  # the classifier's figures don't apply
    assert save(model_folders["cls"], out, "--no-normalize") == 0  # an earlier sentence-transformers folder is replaced
    assert [m["path"] for m in json.loads((out / "modules.json").read_text())] == ["", "1_Pooling"]
    assert not (out / "2_Dense").exists()


def test_facts_travel_and_figures_only_for_the_same_embeddings(model_folders, tmp_path) -> None:
    source = tmp_path / "simcse"
    albert = AlbertForSequenceClassification.from_pretrained(model_folders["cls"]).albert
    write_model_folder(albert, source, load_tokenizer(model_folders["cls"]), {
        "task": "sentence-embeddings", "pooling": "mean", "summary": {"step": 4, "spearman": 0.61}})
    update_model_card(source, license="mit", language=["zh", "en"])
    assert save(source, tmp_path / "mean") == 0 and save(source, tmp_path / "cls", "--pooling", "cls") == 0
    mean, cls = (ModelCard.load(tmp_path / name / "README.md").data for name in ("mean", "cls"))
    assert mean.license == cls.license == "mit" and mean.language == ["zh", "en"]
    assert [(r.metric_name, r.metric_value) for r in mean.eval_results] == [("eval pairs Spearman rho", 0.61)]
    assert not cls.eval_results  # measured with mean pooling: says nothing about cls


def test_bad_requests_are_one_line_errors(model_folders, tmp_path, capsys) -> None:
    assert save(model_folders["mlm"], tmp_path / "st", "--pooling", "pooler") == 2
    assert "AlbertForMaskedLM has no pooler layer" in capsys.readouterr().err
    assert not (tmp_path / "st").exists() and not list(tmp_path.iterdir())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert save(model_folders["cls"], mine) == 2
    assert "holds no sentence-transformers model" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert main(["embed", "--model", str(model_folders["cls"]), "--save-sentence-transformers", str(tmp_path / "a"),
                 "--input", str(model_folders["corpus"])]) == 2
    assert "drop --input/--output" in capsys.readouterr().err
    assert main(["embed", "--model", str(model_folders["cls"]), "--input", str(model_folders["corpus"])]) == 2
    assert "embed needs --input FILE and --output OUT.npy" in capsys.readouterr().err
