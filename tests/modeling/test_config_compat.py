"""Every ALBERT config.json transformers reads means the same in albertkit, or is refused in one clear line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import transformers
from transformers.activations import ACT2FN

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.modeling.activations import ACTIVATIONS, LEARNED_ACTIVATIONS
from albertkit.modeling.config import AlbertConfig


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_equals_transformers(name: str) -> None:
    x = torch.linspace(-12, 12, 2001)
    torch.testing.assert_close(ACTIVATIONS[name](x), ACT2FN[name](x), atol=1e-6, rtol=1e-6)


def test_every_parameter_free_transformers_activation_is_known() -> None:
    assert set(ACT2FN) == set(ACTIVATIONS) | set(LEARNED_ACTIVATIONS)


def test_fields_left_out_take_transformers_defaults() -> None:
    ours = AlbertConfig.from_dict({"model_type": "albert"}).to_dict()
    theirs = transformers.AlbertConfig().to_dict()
    shared = {f.name for f in dataclasses.fields(AlbertConfig)} - {"extra", "id2label", "architectures", "problem_type", "pruned_heads"}
    assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}
    assert ours["hidden_size"] == 4096 and ours["num_attention_heads"] == 64


def test_round_trip_keeps_fields_albertkit_does_not_use() -> None:
    data = {"model_type": "albert", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
            "down_scale_factor": 1, "net_structure_type": 0, "gap_size": 0, "chunk_size_feed_forward": 0}
    again = AlbertConfig.from_dict(data).to_dict()
    assert {k: again[k] for k in data} == data


@pytest.mark.parametrize("fields, message", [
    ({"hidden_act": "prelu"}, "hidden_act 'prelu' has learned weights of its own"),
    ({"hidden_act": "xielu"}, "hidden_act 'xielu' has learned weights of its own"),
    ({"hidden_act": "gelu_fancy"}, "unknown hidden_act 'gelu_fancy'; choose one of gelu, gelu_python"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key' is not supported"),
    ({"pruned_heads": {"0": [0, 1, 2, 3]}}, "pruned_heads removes every head of layer 0"),
    ({"pruned_heads": {"1": [0]}}, "pruned_heads of layer 1 names a layer or head the model does not have"),
    ({"num_hidden_groups": 0}, "num_hidden_groups and num_attention_heads must be at least 1"),
    ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size 30 is not a multiple of num_attention_heads 4"),
])
def test_unsupported_fields_are_one_line_errors_naming_the_file(
    fields: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = {"model_type": "albert", "vocab_size": 50, "hidden_size": 32, "num_attention_heads": 4,
             "intermediate_size": 40, "embedding_size": 16}
    (tmp_path / "config.json").write_text(json.dumps({**shape, **fields}))
    with pytest.raises(UserError, match=message):
        AlbertConfig.from_pretrained(tmp_path)
    assert main(["model", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'config.json'}: " in err and message in err


def test_absolute_position_embeddings_load() -> None:
    config = AlbertConfig.from_dict({"position_embedding_type": "absolute", "hidden_size": 32, "num_attention_heads": 4})
    assert config.to_dict()["position_embedding_type"] == "absolute"
