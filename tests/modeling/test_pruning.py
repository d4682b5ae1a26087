"""Structured pruning: a pruned model equals the unpruned one with those heads / neurons zeroed, saves a folder
albertkit and transformers load with equal outputs (pruned heads: transformers 4 only; transformers 5 dropped
head pruning)."""

import json

import pytest
import torch
import transformers

from albertkit.errors import UserError
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertForSequenceClassification
from albertkit.modeling.pruning import prune_ffn, prune_heads, shared_layers

TRANSFORMERS_4 = int(transformers.__version__.split(".")[0]) < 5


def _config(**overrides) -> AlbertConfig:
    values = dict(vocab_size=97, embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2,
                  inner_group_num=1, num_attention_heads=4, intermediate_size=48, max_position_embeddings=40,
                  id2label={0: "neg", 1: "pos"})
    return AlbertConfig(**{**values, **overrides})


def _batch(config: AlbertConfig) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, config.vocab_size, (3, 11), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    return dict(input_ids=input_ids, attention_mask=attention_mask)


def _model(**overrides) -> AlbertForSequenceClassification:
    torch.manual_seed(0)
    return AlbertForSequenceClassification(_config(**overrides)).eval()


def _zero_heads_and_neurons(model, heads: dict[int, list[int]], neurons: dict[int, list[int]]) -> None:
    """The unpruned equivalent: a removed head's value rows and a removed neuron's output column set to zero."""
    with torch.no_grad():
        for layer_index, layer in enumerate(shared_layers(model)):
            size = layer.attention.head_size
            for head in heads.get(layer_index, []):
                layer.attention.dense.weight[:, head * size:(head + 1) * size] = 0
            layer.ffn_output.weight[:, neurons.get(layer_index, [])] = 0


def test_pruned_model_equals_the_model_with_those_parts_zeroed_and_shrinks():
    model, reference = _model(), _model()
    heads, neurons = {0: [1, 3], 1: [0, 2]}, {0: list(range(0, 48, 2)), 1: list(range(1, 48, 2))}
    _zero_heads_and_neurons(reference, heads, neurons)
    prune_heads(model, heads)
    prune_ffn(model, {i: [n for n in range(48) if n not in removed] for i, removed in neurons.items()})
    batch = _batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits, atol=1e-5, rtol=1e-5)
    assert model.config.pruned_heads == {0: [1, 3], 1: [0, 2]}
    assert model.config.intermediate_size == 24
    assert shared_layers(model)[0].attention.query.weight.shape == (16, 32)
    assert model.num_parameters() < reference.num_parameters()


def test_second_prune_records_original_head_indices_and_reloads(tmp_path):
    model = _model()
    prune_heads(model, {0: [1]})
    prune_heads(model, {0: [1]})  # the head now at index 1 is the original head 2
    assert model.config.pruned_heads == {0: [1, 2]}
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["pruned_heads"] == {"0": [1, 2]}
    reloaded = AlbertForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = _batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_pruning_every_head_or_uneven_ffn_is_refused():
    model = _model()
    with pytest.raises(UserError, match="cannot remove all 4 heads of layer 0"):
        prune_heads(model, {0: [0, 1, 2, 3]})
    with pytest.raises(UserError, match="same positive number of FFN neurons"):
        prune_ffn(model, {0: list(range(10)), 1: list(range(12))})
    with pytest.raises(UserError, match="removes every head of layer 1"):
        _config(pruned_heads={"1": [0, 1, 2, 3]})


def test_ffn_pruned_folder_loads_in_transformers_with_equal_outputs(tmp_path):
    model = _model()
    prune_ffn(model, {i: list(range(0, 48, 3)) for i in range(2)})
    model.save_pretrained(tmp_path)
    theirs = transformers.AlbertForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = _batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(theirs(**batch).logits, model(**batch).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not TRANSFORMERS_4, reason="transformers 5 removed head pruning (config.pruned_heads)")
def test_head_pruned_folder_loads_in_transformers_4_with_equal_outputs(tmp_path):
    model = _model(num_hidden_groups=2, inner_group_num=2)
    prune_heads(model, {0: [0], 3: [1, 2]})
    prune_ffn(model, {i: list(range(20)) for i in range(4)})
    model.save_pretrained(tmp_path)
    theirs = transformers.AlbertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert theirs.config.pruned_heads == {0: [0], 3: [1, 2]}
    batch = _batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(theirs(**batch).logits, model(**batch).logits, atol=1e-5, rtol=1e-5)
