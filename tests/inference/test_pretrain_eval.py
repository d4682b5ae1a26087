"""Held-out pretraining scores: full-mask MLM beside the unigram baselines, SOP, and `albertkit pretrain evaluate`."""

import json

import numpy as np
import pytest
import torch

from albertkit.cli import main
from albertkit.data.pretraining import PretrainingData
from albertkit.inference.pretrain_eval import (
    evaluate_pretraining,
    evaluation_batches,
    evaluation_data,
    score_pretraining,
)
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.corpus_init import unigram_log_probs
from albertkit.modeling.model import AlbertForMaskedLM, AlbertForPreTraining

SMALL = dict(embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)


def unigram_only_model(cls, vocab_size: int, log_unigram: np.ndarray):
    """A model that knows nothing but unigram frequencies: every weight zero, the MLM bias the log unigram."""
    model = cls(AlbertConfig.from_preset("tiny", vocab_size=vocab_size, **SMALL))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.predictions.bias.copy_(torch.from_numpy(log_unigram))
    return model.eval()


def test_evaluation_shows_every_scored_token_as_mask(prepared_corpus):
    data = evaluation_data(prepared_corpus / "data", "valid", None, seed=0)
    batch = next(iter(evaluation_batches(data, 8)))
    scored = batch["labels"] != -100
    assert scored.sum() > 0 and bool((batch["input_ids"][scored] == data.mask_token_id).all())
    # Training keeps BERT's 80/10/10: some scored tokens show themselves or a random token.
    train = PretrainingData(prepared_corpus / "data", "train", seed=0)
    batch = train.batch(32, 0, 0)
    scored = batch["labels"] != -100
    assert 0.7 < float((batch["input_ids"][scored] == train.mask_token_id).float().mean()) < 0.9


@pytest.mark.parametrize("cls", [AlbertForPreTraining, AlbertForMaskedLM])
def test_a_unigram_only_model_scores_exactly_the_baseline(prepared_corpus, cls):
    data = evaluation_data(prepared_corpus / "data", "train", None, seed=0)
    log_unigram = unigram_log_probs(data.shards.token_ids, data.vocab_size)
    model = unigram_only_model(cls, data.vocab_size, log_unigram)
    scores = score_pretraining(model, evaluation_batches(data, 16, 4), log_unigram)
    assert scores["masked_tokens"] > 100
    assert scores["mlm_accuracy"] == scores["mlm_baseline_accuracy"] > 0
    assert scores["mlm_loss"] == pytest.approx(scores["mlm_unigram_loss"], abs=1e-4)
    if cls is AlbertForPreTraining:  # zero weights: both orders equally likely, the argmax says "in order"
        assert scores["sop_pairs"] == 64 and 0 < scores["sop_accuracy"] < 1
    else:
        assert "sop_accuracy" not in scores


def test_unigram_log_probs_are_add_one_smoothed():
    log_p = unigram_log_probs(np.array([1, 1, 2]), 4)
    assert np.exp(log_p).tolist() == pytest.approx([1 / 7, 3 / 7, 2 / 7, 1 / 7])


def test_pretrain_evaluate_scores_a_transformers_folder(prepared_corpus, tmp_path, capsys):
    import transformers

    config = transformers.AlbertConfig(vocab_size=70, **SMALL)
    torch.manual_seed(0)
    transformers.AlbertForMaskedLM(config).save_pretrained(tmp_path / "hf")
    from albertkit.tokenization.loading import load_tokenizer

    load_tokenizer(prepared_corpus / "tok").save_pretrained(tmp_path / "hf")
    out = tmp_path / "scores.json"
    code = main(["pretrain", "evaluate", "--model", str(tmp_path / "hf"), "--input", str(prepared_corpus / "corpus.txt"),
                 "--max-seq-length", "64", "--max-documents", "10", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "most-frequent-token baseline" in printed and "SOP" not in printed
    scores = json.loads(out.read_text())
    assert scores["documents"] == 10 and scores["max_seq_length"] == 64
    assert 0 <= scores["mlm_accuracy"] <= 1 and scores["mlm_loss"] > 0 and scores["masked_tokens"] > 50
    # Same text, same seed: the same figures.
    again = evaluate_pretraining(tmp_path / "hf", prepared_corpus / "corpus.txt", max_seq_length=64, max_documents=10)
    assert again == scores


def test_pretrain_evaluate_refuses_a_model_without_mlm_head(model_folders, capsys):
    code = main(["pretrain", "evaluate", "--model", str(model_folders["cls"]), "--input", str(model_folders["corpus"])])
    err = capsys.readouterr().err
    assert code == 2 and "AlbertForSequenceClassification has no masked-LM head to evaluate" in err
    assert "config.json" in err
