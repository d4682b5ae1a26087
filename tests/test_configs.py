"""The shipped YAML configs use only known keys and the paper's recipe where they claim it."""

from pathlib import Path

import pytest

from albertkit.run_config import field_names, load_yaml_config, merge_config
from albertkit.train.loop import TrainConfig
from albertkit.train.pretrain import PretrainOptions

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "pretrain").glob("*.yaml")), ids=lambda p: p.name)
def test_pretrain_configs_have_known_keys(path):
    values = merge_config(load_yaml_config(path), {}, field_names(TrainConfig, PretrainOptions), path)
    assert values["optimizer"] == "lamb"


def test_base_config_is_the_papers_recipe():
    values = load_yaml_config(CONFIGS / "pretrain" / "base.yaml")
    assert (values["learning_rate"], values["batch_size"], values["max_steps"], values["warmup_steps"],
            values["max_seq_length"]) == (0.00176, 4096, 125000, 3125, 512)


def test_unknown_key_names_the_file(tmp_path):
    from albertkit.errors import UserError

    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: 0.1\nlearnig_rate: 0.2\n")
    with pytest.raises(UserError, match=r"bad.yaml: unknown config key\(s\): learnig_rate"):
        merge_config(load_yaml_config(path), {}, field_names(TrainConfig, PretrainOptions), path)


def test_malformed_yaml_names_the_line(tmp_path):
    from albertkit.errors import UserError

    path = tmp_path / "broken.yaml"
    path.write_text("learning_rate: 0.1\nbatch_size: [1, 2\n")
    with pytest.raises(UserError, match=r"broken.yaml:\d+: invalid YAML"):
        load_yaml_config(path)
