"""Our ALBERT against transformers': same keys, same outputs (fp32, 1e-5), both directions."""

import json

import pytest
import torch
import transformers

import albertkit.modeling.model as ak
from albertkit.modeling.config import AlbertConfig

HEADS = [
    "AlbertModel",
    "AlbertForPreTraining",
    "AlbertForMaskedLM",
    "AlbertForSequenceClassification",
    "AlbertForTokenClassification",
    "AlbertForQuestionAnswering",
]


def small_config(name: str = "AlbertForSequenceClassification", **overrides) -> AlbertConfig:
    """Label names only for the heads that use them (transformers sizes every head by num_labels)."""
    labels = {0: "neg", 1: "neutral", 2: "pos"} if name in ("AlbertForSequenceClassification", "AlbertForTokenClassification") else None
    values = dict(
        vocab_size=97, embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2,
        inner_group_num=2, num_attention_heads=4, intermediate_size=48, max_position_embeddings=40,
        id2label=labels,
    )
    return AlbertConfig(**{**values, **overrides})


def batch(config: AlbertConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, config.vocab_size, (3, 11), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    attention_mask[2, 4:] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 5:] = 1
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


def assert_close_on_real_tokens(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> None:
    """Compare per-token outputs at real positions only: padding positions carry no meaning."""
    assert ours.shape == theirs.shape
    real = mask.bool()
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)


def compare(name: str, ours: torch.nn.Module, theirs: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> None:
    ours.eval()
    theirs.eval()
    mask = inputs["attention_mask"]
    with torch.no_grad():
        a, b = ours(**inputs), theirs(**inputs)
    if name == "AlbertModel":
        assert_close_on_real_tokens(a.last_hidden_state, b.last_hidden_state, mask)
        torch.testing.assert_close(a.pooler_output, b.pooler_output, atol=1e-5, rtol=1e-5)
    elif name == "AlbertForPreTraining":
        assert_close_on_real_tokens(a.prediction_logits, b.prediction_logits, mask)
        torch.testing.assert_close(a.sop_logits, b.sop_logits, atol=1e-5, rtol=1e-5)
    elif name in ("AlbertForMaskedLM", "AlbertForTokenClassification"):
        assert_close_on_real_tokens(a.logits, b.logits, mask)
    elif name == "AlbertForSequenceClassification":
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-5)
    else:
        assert_close_on_real_tokens(a.start_logits, b.start_logits, mask)
        assert_close_on_real_tokens(a.end_logits, b.end_logits, mask)


@pytest.mark.parametrize("name", HEADS)
def test_transformers_folder_loads_in_albertkit(name, tmp_path):
    config = small_config(name)
    torch.manual_seed(1)
    theirs = getattr(transformers, name)(transformers.AlbertConfig(**config.to_dict()))
    theirs.save_pretrained(tmp_path)
    ours = getattr(ak, name).from_pretrained(tmp_path)
    compare(name, ours, theirs, batch(config))


@pytest.mark.parametrize("name", HEADS)
def test_albertkit_folder_loads_in_transformers(name, tmp_path):
    config = small_config(name)
    torch.manual_seed(2)
    ours = getattr(ak, name)(config)
    for p in ours.parameters():  # perturb so zero biases and unit norms are tested too
        p.data.add_(torch.randn_like(p) * 0.02)
    ours.save_pretrained(tmp_path)
    theirs, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    compare(name, ours, theirs, batch(config, seed=3))


def test_losses_equal_transformers(tmp_path):
    config = small_config("AlbertForPreTraining")
    torch.manual_seed(3)
    theirs = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config.to_dict())).eval()
    theirs.save_pretrained(tmp_path)
    ours = ak.AlbertForPreTraining.from_pretrained(tmp_path).eval()
    inputs = batch(config)
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[0, [1, 4, 9]] = inputs["input_ids"][0, [1, 4, 9]]
    labels[1, 2] = 7
    sop = torch.tensor([0, 1, 1])
    with torch.no_grad():
        expected = theirs(**inputs, labels=labels, sentence_order_label=sop).loss
        sparse = ours(**inputs, labels=labels, sentence_order_label=sop)
        dense = ours(**inputs, labels=labels, sentence_order_label=sop, sparse_mlm=False)
    torch.testing.assert_close(sparse.loss, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense.loss, expected, atol=1e-5, rtol=1e-5)
    assert sparse.prediction_logits.shape == (4, config.vocab_size)


def test_unpadded_equals_padded_and_gradients_match():
    """The unpadded fast path gives the outputs and gradients of running each sequence alone."""
    config = small_config()
    torch.manual_seed(4)
    model = ak.AlbertForSequenceClassification(config).eval()
    inputs = batch(config)
    labels = torch.tensor([0, 2, 1])
    out = model(**inputs, labels=labels)
    out.loss.backward()
    batched_grad = model.albert.encoder.embedding_hidden_mapping_in.weight.grad.clone()
    model.zero_grad()
    total = 0
    for row in range(3):
        n = int(inputs["attention_mask"][row].sum())
        single = {k: v[row : row + 1, :n] for k, v in inputs.items()}
        alone = model(**single, labels=labels[row : row + 1])
        torch.testing.assert_close(alone.logits[0], out.logits[row], atol=1e-5, rtol=1e-5)
        total = total + alone.loss / 3
    total.backward()
    torch.testing.assert_close(model.albert.encoder.embedding_hidden_mapping_in.weight.grad, batched_grad, atol=1e-6, rtol=1e-4)


def test_decoder_tied_to_embeddings():
    model = ak.AlbertForPreTraining(small_config("AlbertForPreTraining"))
    assert model.predictions.decoder.weight is model.albert.embeddings.word_embeddings.weight
    assert model.predictions.decoder.bias is model.predictions.bias


@pytest.mark.parametrize(
    "preset, expected",
    [("base", 11_683_584), ("large", 17_683_968), ("xlarge", 58_724_864), ("xxlarge", 222_595_584)],
)
def test_encoder_parameter_counts_equal_transformers(preset, expected):
    config = AlbertConfig.from_preset(preset, vocab_size=30000)
    with torch.device("meta"):
        ours = ak.AlbertModel(config).num_parameters()
        theirs = transformers.AlbertModel(transformers.AlbertConfig(**config.to_dict())).num_parameters()
    assert ours == theirs == expected


# Layer-to-group shapes transformers accepts: layers not a multiple of groups, one group per layer, more groups
# than layers, two layers per group; 18 in 14 is where transformers' float mapping differs from exact floor.
GROUP_SHAPES = [(5, 2, 1), (3, 3, 1), (5, 2, 2), (2, 3, 1), (7, 3, 2), (18, 14, 1)]


@pytest.mark.parametrize("layers, groups, inner", GROUP_SHAPES)
@pytest.mark.parametrize("name", ["AlbertModel", "AlbertForPreTraining"])
def test_any_layer_group_shape_equals_transformers(name, layers, groups, inner, tmp_path):
    config = small_config(name, num_hidden_layers=layers, num_hidden_groups=groups, inner_group_num=inner)
    torch.manual_seed(5)
    theirs = getattr(transformers, name)(transformers.AlbertConfig(**config.to_dict()))
    for p in theirs.parameters():  # distinct groups must be told apart: no two start equal
        p.data.add_(torch.randn_like(p) * 0.05)
    theirs.save_pretrained(tmp_path / "theirs")
    ours = getattr(ak, name).from_pretrained(tmp_path / "theirs")
    compare(name, ours, theirs, batch(config))
    ours.save_pretrained(tmp_path / "ours")
    again, info = getattr(transformers, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    compare(name, ours, again, batch(config, seed=6))


def test_layer_groups_follow_transformers_float_mapping():
    assert AlbertConfig(num_hidden_layers=5, num_hidden_groups=2).layer_groups() == [0, 0, 0, 1, 1]
    assert AlbertConfig(num_hidden_layers=2, num_hidden_groups=3).layer_groups() == [0, 1]
    # int(9 / (18 / 14)) is 6 in floating point, floor(9 * 14 / 18) is 7: transformers (the reference) says 6.
    assert AlbertConfig(num_hidden_layers=18, num_hidden_groups=14).layer_groups()[9] == 6


@pytest.mark.parametrize("hidden_act", ["gelu", "relu2", "quick_gelu", "mish"])
def test_other_activations_equal_transformers(hidden_act, tmp_path):
    config = small_config("AlbertForMaskedLM", hidden_act=hidden_act)
    torch.manual_seed(7)
    theirs = transformers.AlbertForMaskedLM(transformers.AlbertConfig(**config.to_dict()))
    theirs.save_pretrained(tmp_path)
    compare("AlbertForMaskedLM", ak.AlbertForMaskedLM.from_pretrained(tmp_path), theirs, batch(config))


@pytest.mark.parametrize("name", ["AlbertForMaskedLM", "AlbertForPreTraining"])
def test_untied_decoder_equals_transformers(name, tmp_path):
    config = small_config(name, tie_word_embeddings=False)
    torch.manual_seed(8)
    theirs = getattr(transformers, name)(transformers.AlbertConfig(**config.to_dict()))
    theirs.predictions.decoder.weight.data.normal_()  # untied: differs from the embeddings
    theirs.save_pretrained(tmp_path / "theirs")
    ours = getattr(ak, name).from_pretrained(tmp_path / "theirs")
    assert ours.predictions.decoder.weight is not ours.albert.embeddings.word_embeddings.weight
    compare(name, ours, theirs, batch(config))
    ours.save_pretrained(tmp_path / "ours")
    again, info = getattr(transformers, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    torch.testing.assert_close(again.predictions.decoder.weight, theirs.predictions.decoder.weight)


def test_num_labels_without_label_names_sizes_the_classifier(tmp_path):
    config = small_config(id2label=None)
    torch.manual_seed(9)
    theirs = transformers.AlbertForSequenceClassification(transformers.AlbertConfig(**config.to_dict(), num_labels=5))
    theirs.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.pop("id2label", None), saved.pop("label2id", None)  # as older tools wrote it: a count, no names
    (tmp_path / "config.json").write_text(json.dumps({**saved, "num_labels": 5}))
    ours = ak.AlbertForSequenceClassification.from_pretrained(tmp_path)
    assert ours.config.id2label == {i: f"LABEL_{i}" for i in range(5)}
    compare("AlbertForSequenceClassification", ours, theirs, batch(config))
