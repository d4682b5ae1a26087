"""Warm starts from corpus statistics: the unigram MLM bias and PPMI-SVD word embeddings."""

import numpy as np
import pytest
import torch

from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.corpus_init import ppmi_svd_embeddings, unigram_log_probs, warm_start
from albertkit.modeling.model import AlbertForPreTraining


def synonym_corpus(seed: int = 0) -> np.ndarray:
    """Ids 10 and 11 fill the same slot between 5 and 6, id 12 always stands between 7 and 8."""
    rng = np.random.default_rng(seed)
    rows = [[5, rng.choice([10, 11]), 6] if rng.random() < 0.6 else [7, 12, 8] for _ in range(3000)]
    return np.concatenate(rows)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_ppmi_svd_gives_words_of_one_slot_close_vectors():
    vectors = ppmi_svd_embeddings(synonym_corpus(), 16, 4, window=1)
    assert vectors.shape == (16, 4) and vectors.dtype == np.float32
    assert cosine(vectors[10], vectors[11]) > 0.95
    assert cosine(vectors[10], vectors[12]) < 0.3
    assert np.abs(vectors[0]).max() < 1e-5  # an id never seen gets a zero row


def test_warm_start_sets_the_bias_and_the_tied_embeddings():
    config = AlbertConfig.from_preset("tiny", vocab_size=16, embedding_size=4, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32)
    model = AlbertForPreTraining(config)
    tokens = synonym_corpus()
    warm_start(model, tokens, unigram_bias=True, embeddings="ppmi")
    assert model.predictions.bias.detach().numpy() == pytest.approx(unigram_log_probs(tokens, 16))
    embeddings = model.albert.embeddings.word_embeddings.weight.detach().numpy()
    assert float(embeddings.std()) == pytest.approx(config.initializer_range, rel=1e-3)
    assert model.predictions.decoder.weight is model.albert.embeddings.word_embeddings.weight
    assert cosine(embeddings[10], embeddings[11]) > 0.95
    with pytest.raises(ValueError, match="unknown embedding initialisation 'glove'"):
        warm_start(model, tokens, embeddings="glove")


def test_warm_start_leaves_the_random_init_alone_when_asked():
    config = AlbertConfig.from_preset("tiny", vocab_size=16, embedding_size=4, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32)
    torch.manual_seed(0)
    model = AlbertForPreTraining(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    warm_start(model, synonym_corpus(), unigram_bias=False, embeddings="random")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
