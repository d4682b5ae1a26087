"""Folders saved by transformers 5, whose tokenizer is only `tokenizer.json` (no spiece.model, no vocab.txt):
id-for-id parity, offsets, word starts, and such a folder through embed, fine-tune and back to transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MIXED, sample_texts, write_bert_vocab

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.samples import sample_path
from albertkit.tokenization.fast import FastTokenizer
from albertkit.tokenization.loading import load_tokenizer
from albertkit.tokenization.sentencepiece import AlbertTokenizer
from albertkit.tokenization.training import train_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = [*MIXED, "", "  spaced   out  ", "[MASK] at the start", *sample_texts("en")[:100], *sample_texts("zh")[:100]]


@pytest.fixture(scope="module")
def spiece_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("spiece")
    train_tokenizer([sample_path("en", "corpus.txt"), sample_path("zh", "corpus.txt")], out, vocab_size=1200)
    return out


@pytest.fixture(scope="module")
def albert_json_dir(spiece_dir, tmp_path_factory) -> Path:
    """The SentencePiece tokenizer as transformers 5 saves it: tokenizer.json and tokenizer_config.json."""
    out = tmp_path_factory.mktemp("albert-json")
    transformers.AlbertTokenizer.from_pretrained(spiece_dir).save_pretrained(out)
    assert sorted(p.name for p in out.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    return out


@pytest.fixture(scope="module")
def bert_json_dir(tmp_path_factory) -> Path:
    vocab = tmp_path_factory.mktemp("vocab")
    write_bert_vocab(sample_texts("zh") + sample_texts("en"), vocab)
    out = tmp_path_factory.mktemp("bert-json")
    transformers.BertTokenizer.from_pretrained(vocab).save_pretrained(out)
    assert not (out / "vocab.txt").exists()
    return out


@pytest.mark.parametrize("folder", ["albert_json_dir", "bert_json_dir"])
def test_parity_with_transformers(folder, request):
    folder = request.getfixturevalue(folder)
    tok = load_tokenizer(folder)
    assert isinstance(tok, FastTokenizer) and tok.vocab_file == "tokenizer.json"
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    assert tok.encode_batch(TEXTS) == hf(TEXTS, add_special_tokens=False)["input_ids"]
    pairs = TEXTS[::-1]
    for max_length in (9, 40):
        ours = tok(TEXTS, pairs, truncation=True, max_length=max_length)
        theirs = hf(TEXTS, pairs, truncation=True, max_length=max_length, return_token_type_ids=True)
        assert all(ours[key] == theirs[key] for key in ("input_ids", "token_type_ids", "attention_mask"))
    ids = tok(TEXTS[:40])["input_ids"]
    assert [tok.decode(row) for row in ids] == [hf.decode(row, skip_special_tokens=True) for row in ids]
    assert (tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (hf.cls_token_id, hf.sep_token_id,
                                                                      hf.mask_token_id)


def test_unigram_json_equals_the_sentencepiece_model_it_came_from(spiece_dir, albert_json_dir):
    fast, slow = load_tokenizer(albert_json_dir), AlbertTokenizer.from_pretrained(spiece_dir)
    assert fast.kind == "Unigram" and fast.vocab_size == slow.vocab_size == 1200
    assert fast.encode_batch(TEXTS) == slow.encode_batch(TEXTS)
    assert np.array_equal(fast.word_start_mask, slow.word_start_mask)
    assert fast.all_special_ids == slow.all_special_ids
    for text, (ids, spans) in zip(TEXTS, fast.encode_with_offsets(TEXTS), strict=True):
        assert len(spans) == len(ids) and all(0 <= a <= b <= len(text) for a, b in spans)


def test_saved_again_it_loads_in_transformers(albert_json_dir, tmp_path):
    tok = load_tokenizer(albert_json_dir)
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "albert"}))
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "AlbertTokenizer" and config["mask_token"] == "[MASK]"
    assert transformers.AutoTokenizer.from_pretrained(tmp_path)(MIXED)["input_ids"] == tok(MIXED)["input_ids"]
    assert load_tokenizer(tmp_path).encode_batch(TEXTS) == tok.encode_batch(TEXTS)


def test_unreadable_or_unsupported_tokenizer_json_is_a_user_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "Nope"}}')
    with pytest.raises(UserError, match=r"tokenizer\.json: cannot read the tokenizer"):
        load_tokenizer(tmp_path)
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    Tokenizer(BPE({"a": 0, "b": 1}, [])).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(UserError, match=r"tokenizer\.json: a BPE tokenizer model is not supported"):
        load_tokenizer(tmp_path)


def test_a_folder_fine_tuned_in_transformers_comes_back(albert_json_dir, tmp_path, capsys):
    """A classifier saved by transformers 5 (model and tokenizer): embed it, fine-tune it further, hand it back."""
    folder = tmp_path / "hf-model"
    tok = load_tokenizer(albert_json_dir)
    config = transformers.AlbertConfig(vocab_size=tok.vocab_size, embedding_size=32, hidden_size=64,
                                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                                       num_labels=2, id2label={0: "negative", 1: "positive"})
    torch.manual_seed(0)
    transformers.AlbertForSequenceClassification(config).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(albert_json_dir).save_pretrained(folder)
    assert not (folder / "spiece.model").exists()

    texts = ["a gorgeous film", "北京的天气很好", "[MASK] is here"]
    batch = transformers.AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = transformers.AlbertModel.from_pretrained(folder).eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    np.testing.assert_allclose(Encoder(folder).encode(texts, normalize=False), ((hidden * mask).sum(1) / mask.sum(1)),
                               atol=1e-5, rtol=1e-4)

    assert main(["model", "info", str(folder)]) == 0
    assert "tokenizer: Unigram (tokenizer.json), 1,200 pieces, lowercased" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["finetune", "--task", "classification", "--model", str(folder), "--out", str(out), "--train",
                 str(sample_path("en", "sentiment_train.tsv")), "--dev", str(sample_path("en", "sentiment_dev.tsv")),
                 "--max-steps", "4", "--batch-size", "16", "--eval-every", "4", "--seed", "0"]) == 0
    best = out / "best"
    assert (best / "tokenizer.json").is_file() and not (best / "spiece.model").exists()
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(best).eval()
    batch = transformers.AutoTokenizer.from_pretrained(best)(texts, padding=True, return_tensors="pt")
    from albertkit.modeling.model import AlbertForSequenceClassification

    ours = AlbertForSequenceClassification.from_pretrained(best).eval()
    ours_batch = load_tokenizer(best)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(ours(**ours_batch).logits, theirs(**batch).logits, atol=1e-5, rtol=1e-5)
