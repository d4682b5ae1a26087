"""Chinese end to end, as README.zh-CN.md walks it: tokenizer → prepare with whole-word masking → pretrain →
fine-tune ChnSentiCorp, AFQMC and Resume NER from their configs → evaluate and predict; masking statistics on
real Chinese text."""

import json
from pathlib import Path

import numpy as np
import pytest

from albertkit.cli import main
from albertkit.data.pretraining import PretrainingData
from albertkit.modeling.model import IGNORE_INDEX

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "tasks"


def head(path: Path, lines: int, out: Path) -> Path:
    out.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def zh_corpus(shared_data, tmp_path_factory) -> Path:
    """README.zh-CN.md's corpus: every ChnSentiCorp review and AFQMC sentence its own document (a slice)."""
    zh = shared_data / "zh"
    reviews = [row.split("\t")[0] for row in (zh / "chnsenticorp" / "train.tsv").read_text(encoding="utf-8").splitlines()[:1500]]
    pairs = [text for row in (zh / "afqmc" / "train.tsv").read_text(encoding="utf-8").splitlines()[:1500]
             for text in row.split("\t")[:2]]
    out = tmp_path_factory.mktemp("zh") / "corpus.txt"
    out.write_text("".join(f"{text}\n\n" for text in reviews + pairs if text.strip()), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def zh_prepared(zh_corpus) -> Path:
    root = zh_corpus.parent
    assert main(["tokenizer", "train", "--input", str(zh_corpus), "--lang", "zh", "--vocab-size", "3000",
                 "--out", str(root / "tok")]) == 0
    assert main(["pretrain", "prepare", "--input", str(zh_corpus), "--tokenizer", str(root / "tok"),
                 "--out", str(root / "data"), "--lang", "zh", "--whole-word-mask", "zh", "--max-seq-length", "64",
                 "--workers", "1"]) == 0
    return root


def test_whole_word_masking_statistics_on_chinese_text(zh_prepared):
    data = PretrainingData(zh_prepared / "data")
    examples = np.concatenate([data.examples(epoch) for epoch in range(4)])[:3000]
    pairs, masked_ids, labels, span_words = data.masked_pairs(examples, np.random.default_rng(0),
                                                              max_predictions_per_seq=1000)
    masked = labels != IGNORE_INDEX
    maskable = pairs["maskable"]
    # jieba words span several pieces: far fewer word starts than maskable tokens.
    assert (pairs["word_starts"] & maskable).sum() < 0.8 * maskable.sum()
    # 15% of the tokens in rows long enough for it; a short row (one AFQMC question) still masks one whole
    # n-gram, which is more than 15% of it.
    long_rows = maskable.sum(1) >= 20
    assert long_rows.sum() > 800
    assert abs(masked[long_rows].sum() / maskable[long_rows].sum() - 0.15) < 0.005
    assert masked.any(1).all()
    # Spans of 1, 2, 3 whole words with p(n) proportional to 1/n.
    shares = np.bincount(span_words, minlength=4)[1:] / len(span_words)
    np.testing.assert_allclose(shares, np.array([6, 3, 2]) / 11, atol=0.03)
    assert abs((masked_ids[masked] == data.mask_token_id).mean() - 0.8) < 0.02
    # A masked word is masked whole: a masked piece inside a word follows a masked piece, and a word's
    # first piece that is masked has its continuation masked too.
    continuation = maskable & ~pairs["word_starts"]
    assert (continuation & masked).any() and masked[:, :-1][(continuation & masked)[:, 1:]].all()
    assert masked[:, 1:][(masked[:, :-1] & continuation[:, 1:])].all()


@pytest.fixture(scope="module")
def zh_pretrained(zh_prepared) -> Path:
    out = zh_prepared / "pretrain"
    assert main(["pretrain", "run", "--data", str(zh_prepared / "data"), "--preset", "tiny", "--out", str(out),
                 "--max-steps", "3", "--batch-size", "8", "--log-every", "1", "--seed", "0"]) == 0
    return out / "final"


@pytest.mark.parametrize("name, train, dev, rows", [
    ("chnsenticorp", "chnsenticorp/train.tsv", "chnsenticorp/dev.tsv", 160),
    ("afqmc", "afqmc/train.tsv", "afqmc/dev.tsv", 160),
    ("resume_ner", "ner_resume/train.char.bmes", "ner_resume/dev.char.bmes", 60),
])
def test_finetune_each_chinese_task_from_its_config(zh_pretrained, shared_data, tmp_path, capsys, name, train, dev,
                                                    rows):
    train_file = head(shared_data / "zh" / train, rows, tmp_path / f"train-{Path(train).name}")
    dev_file = head(shared_data / "zh" / dev, rows // 2, tmp_path / f"dev-{Path(dev).name}")
    out = tmp_path / name
    # No --task: the config names it.
    assert main(["finetune", "--config", str(CONFIGS / f"{name}.yaml"), "--model", str(zh_pretrained),
                 "--train", str(train_file), "--dev", str(dev_file), "--out", str(out), "--max-steps", "3",
                 "--batch-size", "8", "--eval-every", "3", "--lr", "1e-3"]) == 0
    config = json.loads((out / "best" / "config.json").read_text())
    info = json.loads((out / "best" / "albertkit.json").read_text())
    if name == "resume_ner":
        assert config["architectures"] == ["AlbertForTokenClassification"]
        assert {"B-NAME", "M-NAME", "E-NAME", "B-ORG", "E-ORG", "O"} <= set(config["id2label"].values())
    else:
        assert config["architectures"] == ["AlbertForSequenceClassification"]
        assert len(config["id2label"]) == 2
    assert info["task"] == ("ner" if name == "resume_ner" else "pair" if name == "afqmc" else "classification")

    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "best"), "--data", str(dev_file)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0.0 <= metrics["f1" if name == "resume_ner" else "accuracy"] <= 1.0

    predictions = tmp_path / "pred.jsonl"
    assert main(["predict", "--model", str(out / "best"), "--input", str(dev_file), "--output", str(predictions)]) == 0
    records = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    if name == "resume_ner":
        # One sentence per line: space-separated characters, a tab, their tags.
        sentences = ["".join(line.split("\t")[0].split()) for line in dev_file.read_text(encoding="utf-8").splitlines()]
        assert len(records) == len(sentences) == rows // 2
        for record, text in zip(records, sentences, strict=True):
            assert len(record["tags"]) == len(text)
            for entity in record["entities"]:
                assert text[entity["start"]:entity["end"]] == entity["text"]
    else:
        assert len(records) == rows // 2
        assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in records)


def test_finetune_without_a_task_names_the_fix(zh_pretrained, tmp_path, capsys):
    rows = tmp_path / "train.tsv"
    rows.write_text("好\t1\n差\t0\n", encoding="utf-8")
    assert main(["finetune", "--model", str(zh_pretrained), "--train", str(rows), "--dev", str(rows),
                 "--out", str(tmp_path / "out")]) == 2
    assert "no task: pass --task or set `task:` in the config file" in capsys.readouterr().err
