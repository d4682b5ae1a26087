"""BERT WordPiece vocabularies (the community `albert_chinese_*` layout): id-for-id parity with transformers'
BertTokenizer, saving in a form transformers' AutoTokenizer loads, and such a checkpoint through embed, prepare,
fine-tune and predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MIXED as MIXED_TEXTS
from conftest import sample_texts, write_bert_vocab

from albertkit.cli import main
from albertkit.data.pretraining import PretrainingData
from albertkit.errors import UserError
from albertkit.inference.embed import Encoder
from albertkit.samples import sample_path
from albertkit.tokenization.loading import load_tokenizer
from albertkit.tokenization.wordpiece import WordPieceTokenizer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

MIXED = [
    *MIXED_TEXTS,
    "这是一个测试[SEP]第二句 [UNK] 结束",
    "control\x00 and zero-width\u200b characters",
    "antidisestablishmentarianism" * 5,
    "",
]


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory) -> Path:
    """A folder holding only vocab.txt, as the albert_chinese_* checkpoints ship it."""
    out = tmp_path_factory.mktemp("wordpiece")
    write_bert_vocab(sample_texts("zh") + sample_texts("en"), out)
    return out


@pytest.fixture(scope="module")
def community_model(vocab_dir, tmp_path_factory) -> Path:
    """A small checkpoint laid out like albert_chinese_*: vocab.txt, a brightmart-style config.json (extra keys,
    exact GELU, no model_type), AlbertForMaskedLM weights in pytorch_model.bin, no tokenizer_config.json."""
    out = tmp_path_factory.mktemp("community")
    vocab_size = len((vocab_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())
    shape = dict(vocab_size=vocab_size, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=128, max_position_embeddings=512)
    torch.manual_seed(0)
    model = transformers.AlbertForMaskedLM(transformers.AlbertConfig(hidden_act="gelu", **shape))
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    config = {"attention_probs_dropout_prob": 0.0, "directionality": "bidi", "hidden_act": "gelu",
              "hidden_dropout_prob": 0.0, "initializer_range": 0.02, "pooler_type": "first_token_transform",
              "type_vocab_size": 2, "ln_type": "postln", **shape}
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (out / "vocab.txt").write_bytes((vocab_dir / "vocab.txt").read_bytes())
    return out


def _assert_same_encoding(ours: dict, theirs) -> None:
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert ours[key] == theirs[key], key


def _assert_parity(tok: WordPieceTokenizer, hf, texts: list[str]) -> None:
    assert tok.encode_batch(texts) == hf(texts, add_special_tokens=False)["input_ids"]
    assert [tok.tokenize(text) for text in texts[:50]] == [hf.tokenize(text) for text in texts[:50]]
    pairs = texts[::-1]
    for max_length in (8, 33, 128):
        _assert_same_encoding(tok(texts, pairs, truncation=True, max_length=max_length),
                              hf(texts, pairs, truncation=True, max_length=max_length, return_token_type_ids=True))
    ids = tok(texts[:50])["input_ids"]
    assert [tok.decode(row) for row in ids] == [hf.decode(row, skip_special_tokens=True) for row in ids]
    assert [tok.decode(row, skip_special_tokens=False) for row in ids] == [hf.decode(row) for row in ids]


def test_parity_with_bert_tokenizer_on_mixed_and_sample_text(vocab_dir):
    tok = load_tokenizer(vocab_dir)
    assert isinstance(tok, WordPieceTokenizer)
    hf = transformers.BertTokenizer.from_pretrained(vocab_dir)
    _assert_parity(tok, hf, MIXED + sample_texts("zh")[:200] + sample_texts("en")[:200])
    # Unknown characters become [UNK]; CJK characters are words of their own; special strings keep their ids.
    assert tok.tokenize("鱻") == ["[UNK]"] and tok.encode("[MASK]是")[0] == tok.mask_token_id == 103
    # BERT does not fold full-width letters (ALBERT's nmt_nfkc does): "ｏｋ" is not "ok".
    assert tok.tokenize("ＯＫ") != tok.tokenize("OK")


def test_parity_on_chnsenticorp_afqmc_and_sst2(vocab_dir, shared_data):
    tok = load_tokenizer(vocab_dir)
    hf = transformers.BertTokenizer.from_pretrained(vocab_dir)
    texts = []
    for name, column in (("zh/chnsenticorp/dev.tsv", 0), ("zh/afqmc/dev.tsv", 1), ("en/sst2/dev.tsv", 0)):
        path = shared_data / name
        if path.is_file():
            texts += [line.split("\t")[column] for line in path.read_text(encoding="utf-8").splitlines()[:400]]
    assert len(texts) > 800
    _assert_parity(tok, hf, texts)


def test_special_ids_and_word_starts(vocab_dir):
    tok = load_tokenizer(vocab_dir)
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        0, 100, 101, 102, 103)
    assert tok.all_special_ids == [0, 100, 101, 102, 103] and tok.vocab_file == "vocab.txt"
    pieces = tok.convert_ids_to_tokens(range(tok.vocab_size))
    continuation = [i for i, piece in enumerate(pieces) if piece.startswith("##")]
    assert len(continuation) > 50 and not tok.word_start_mask[continuation].any()
    assert tok.word_start_mask[tok.convert_tokens_to_ids(["北", "[CLS]"])].all()
    assert tok.convert_tokens_to_ids(["not-a-piece", "北"])[0] == tok.unk_token_id


def test_config_options_follow_transformers(vocab_dir, tmp_path):
    cased = tmp_path / "cased"
    cased.mkdir()
    (cased / "vocab.txt").write_bytes((vocab_dir / "vocab.txt").read_bytes())
    (cased / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": False, "tokenize_chinese_chars": False, "model_max_length": 1000000000000000019884624838656,
         "unk_token": {"__type": "AddedToken", "content": "[UNK]", "lstrip": False}}))
    tok = load_tokenizer(cased)
    hf = transformers.BertTokenizer.from_pretrained(cased)
    assert tok.encode_batch(MIXED) == hf(MIXED, add_special_tokens=False)["input_ids"]
    assert tok.model_max_length == 512 and not tok.do_lower_case and tok.keep_accents


def test_saved_folder_loads_in_transformers_auto_tokenizer(vocab_dir, tmp_path):
    tok = load_tokenizer(vocab_dir)
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "albert", "vocab_size": tok.vocab_size}))
    assert (tmp_path / "vocab.txt").read_bytes() == (vocab_dir / "vocab.txt").read_bytes()
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "BertTokenizer"
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert type(auto).__name__.startswith("BertTokenizer")
    assert auto(MIXED)["input_ids"] == tok(MIXED)["input_ids"]
    assert load_tokenizer(tmp_path).encode_batch(MIXED) == tok.encode_batch(MIXED)
    # The saved tokenizer.json adds [CLS] and [SEP] by itself, for readers that take it as it is.
    from tokenizers import Tokenizer

    saved = Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode("北京", "上海")
    assert saved.ids == tok("北京", "上海")["input_ids"] and saved.type_ids == tok("北京", "上海")["token_type_ids"]


def test_embed_with_a_vocabulary_that_lacks_mask_is_one_line(community_model, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(community_model, model)
    vocab = (model / "vocab.txt").read_text(encoding="utf-8").replace("[MASK]\n", "[MASK2]\n")
    (model / "vocab.txt").write_text(vocab, encoding="utf-8")
    texts = tmp_path / "texts.txt"
    texts.write_text("我爱北京\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["embed", "--model", str(model), "--input", str(texts), "--output", str(tmp_path / "v.npy")]) == 2
    assert capsys.readouterr().err == (
        f"albertkit: error: {model / 'vocab.txt'}: the vocabulary has no [MASK], which ALBERT needs\n")
    assert not (tmp_path / "v.npy").exists()


def test_bad_vocabularies_are_user_errors(vocab_dir, tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n北\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"vocab\.txt: the vocabulary has no \[MASK\], which ALBERT needs"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_bytes(b"[PAD]\n\xff\n")
    with pytest.raises(UserError, match=r"vocab\.txt:2: invalid UTF-8"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").unlink()
    with pytest.raises(UserError, match=r"no spiece\.model \(or tokenizer\.json or BERT vocab\.txt\) in this folder"):
        load_tokenizer(tmp_path)


def test_community_checkpoint_embeds_like_transformers(community_model):
    encoder = Encoder(community_model)
    texts = ["我爱北京天安门", "这家酒店的服务很好，下次还来。", "ALBERT 模型"]
    theirs = transformers.AlbertModel.from_pretrained(community_model).eval()
    batch = transformers.BertTokenizer.from_pretrained(community_model)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = theirs(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(encoder.encode(texts, pooling="mean", normalize=False), expected, atol=1e-5, rtol=1e-4)


def test_community_checkpoint_without_architectures_fills_masks_like_transformers(community_model, capsys):
    from albertkit.serve.model_functions import TaskModel

    served = TaskModel(community_model)  # config.json names no architecture: the MLM weights decide
    assert main(["model", "info", str(community_model)]) == 0
    assert "tokenizer: WordPiece (vocab.txt)" in capsys.readouterr().out
    assert type(served.model).__name__ == "AlbertForMaskedLM" and "fill-mask" in served.tasks
    text = "北京是中国的[MASK]都，上海在[MASK]边。"
    (result,) = served.fill_mask([(text, 5)])
    theirs = transformers.AlbertForMaskedLM.from_pretrained(community_model).eval()
    batch = transformers.BertTokenizer.from_pretrained(community_model)(text, return_tensors="pt")
    with torch.no_grad():
        logits = theirs(**batch).logits[0, batch["input_ids"][0] == 103]
    special = [0, 100, 101, 102, 103]
    logits[:, special] = -float("inf")
    expected = logits.softmax(-1).topk(5)
    assert [[c["id"] for c in candidates] for candidates in result] == expected.indices.tolist()
    np.testing.assert_allclose([[c["score"] for c in candidates] for candidates in result],
                               expected.values.numpy(), rtol=1e-4)


def test_served_ner_entities_are_exact_slices_of_chinese_text(vocab_dir, tmp_path):
    from types import SimpleNamespace

    from albertkit.modeling.config import AlbertConfig
    from albertkit.modeling.folder import write_model_folder
    from albertkit.modeling.model import AlbertForTokenClassification
    from albertkit.serve.model_functions import TaskModel

    tok = load_tokenizer(vocab_dir)
    config = AlbertConfig(vocab_size=tok.vocab_size, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64, id2label={0: "O", 1: "B-PER", 2: "I-PER"})
    write_model_folder(AlbertForTokenClassification(config), tmp_path / "ner", tok, {"task": "ner"})
    served = TaskModel(tmp_path / "ner")
    zhang, san = tok.convert_tokens_to_ids(["张", "三"])
    assert tok.unk_token_id not in (zhang, san)

    def tag_zhang_san(input_ids, **_):  # stands in for a trained model: 张 B-PER, 三 I-PER
        logits = torch.zeros(*input_ids.shape, 3)
        logits[..., 0] = 1.0
        logits[..., 1] += 5.0 * (input_ids == zhang)
        logits[..., 2] += 5.0 * (input_ids == san)
        return SimpleNamespace(logits=logits, start_logits=None, end_logits=None)

    served.predictor.model.forward = tag_zhang_san
    text = "老师张三 在学校，Café 张三！"
    (result,) = served.ner([text])
    assert [(e["text"], e["char_start"], e["char_end"]) for e in result["entities"]] == [
        ("张三", 2, 4), ("张三", 14, 16)]  # not "张 三", as decoding WordPiece pieces would give


def test_community_checkpoint_fine_tunes_predicts_and_round_trips(community_model, tmp_path):
    out = tmp_path / "run"
    train, dev = sample_path("zh", "sentiment_train.tsv"), sample_path("zh", "sentiment_dev.tsv")
    assert main(["finetune", "--task", "classification", "--model", str(community_model), "--out", str(out),
                 "--train", str(train), "--dev", str(dev), "--max-steps", "6", "--batch-size", "16",
                 "--eval-every", "6", "--seed", "0"]) == 0
    best = out / "best"
    assert (best / "vocab.txt").read_bytes() == (community_model / "vocab.txt").read_bytes()
    assert not (best / "spiece.model").exists()
    predictions = tmp_path / "p.jsonl"
    assert main(["predict", "--model", str(best), "--input", str(dev), "--output", str(predictions)]) == 0
    records = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    texts = [row.split("\t")[0] for row in dev.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(records) == len(texts) == 80
    # transformers loads the fine-tuned folder with AutoTokenizer (BertTokenizer) and gives the same probabilities.
    hf_tok = transformers.AutoTokenizer.from_pretrained(best)
    hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(best).eval()
    with torch.no_grad():
        probs = hf_model(**hf_tok(texts[:16], padding=True, return_tensors="pt")).logits.softmax(-1)
    labels = [hf_model.config.id2label[i] for i in range(2)]
    ours = np.array([[r["probabilities"][label] for label in labels] for r in records[:16]])
    np.testing.assert_allclose(ours, probs.numpy(), atol=1e-5)


def test_prepare_and_pretrain_with_a_wordpiece_vocabulary_and_jieba_words(community_model, tmp_path):
    pytest.importorskip("jieba")
    assert main(["pretrain", "prepare", "--input", str(sample_path("zh", "corpus.txt")), "--tokenizer",
                 str(community_model), "--out", str(tmp_path / "data"), "--lang", "zh", "--whole-word-mask", "zh",
                 "--max-seq-length", "64", "--workers", "1"]) == 0
    index = json.loads((tmp_path / "data" / "index.json").read_text())
    assert index["tokenizer"]["file"] == "vocab.txt" and index["special_token_ids"]["mask"] == 103
    assert (tmp_path / "data" / "tokenizer" / "vocab.txt").is_file()
    data = PretrainingData(tmp_path / "data")
    pairs, _, _, _ = data.masked_pairs(data.examples(0), np.random.default_rng(0), max_predictions_per_seq=10)
    maskable = pairs["maskable"]
    # Every Chinese character is its own WordPiece word; jieba joins them into words of one to four characters.
    # (0.65 here; without jieba every token would start a word).
    assert 0.55 < (pairs["word_starts"] & maskable).sum() / maskable.sum() < 0.75
    # Pretraining from scratch with the BERT vocabulary: the model folder carries vocab.txt, AutoTokenizer loads it.
    run = tmp_path / "run"
    assert main(["pretrain", "run", "--data", str(tmp_path / "data"), "--preset", "tiny", "--out", str(run),
                 "--max-steps", "2", "--batch-size", "8", "--log-every", "1", "--seed", "0"]) == 0
    final = run / "final"
    assert json.loads((final / "config.json").read_text())["vocab_size"] == index["vocab_size"]
    assert transformers.AutoTokenizer.from_pretrained(final)("北京")["input_ids"] == load_tokenizer(final)("北京")[
        "input_ids"]
    # Continuing the checkpoint's own pretraining: its MLM weights carry over, the SOP head starts new.
    continued = tmp_path / "continued"
    assert main(["pretrain", "run", "--data", str(tmp_path / "data"), "--model", str(community_model), "--out",
                 str(continued), "--max-steps", "2", "--batch-size", "8", "--log-every", "1", "--seed", "0"]) == 0
    before = torch.load(community_model / "pytorch_model.bin", weights_only=True)
    from safetensors.torch import load_file

    after = load_file(continued / "final" / "model.safetensors")
    moved = (after["albert.embeddings.word_embeddings.weight"] - before["albert.embeddings.word_embeddings.weight"])
    assert 0 < moved.abs().max() < 0.1  # two small steps from the checkpoint, not a fresh model
