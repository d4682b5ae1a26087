"""Mistakes in a training config file, run through `pretrain run --config`: one line naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import TEXT, cli, error_line, write

from albertkit.train.pretrain import PretrainSettings
from albertkit.train.settings import load_settings

# --- pretrain run --config --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(bad_input_folders, tmp_path_factory) -> Path:
    from albertkit.data.prepare import prepare_pretraining_data

    root = tmp_path_factory.mktemp("prepared")
    write(root / "text.txt", TEXT.encode())
    prepare_pretraining_data(root / "text.txt", bad_input_folders["tokenizer"], root / "data", max_seq_length=32, workers=1)
    return root / "data"


@pytest.mark.parametrize(("yaml", "message"), [
    ("learning_rate: 0.1\nlearnig_rate: 0.2\n", "{path}:2: unknown config key 'learnig_rate'; did you mean "
     "'learning_rate'?"),
    ("lr: 0.1\n", "{path}:1: unknown config key 'lr'; known keys: adam_epsilon, batch_size, "),
    ("model:\n  num_hidden_layers: 2\n  hiden_size: 64\n",
     "{path}:3: unknown model key 'hiden_size'; did you mean 'hidden_size'?"),
    ("learning_rate: fast\n", "{path}:1: learning_rate must be float, not 'fast'"),
    ("\nwarmup_steps: 10.5\n", "{path}:2: warmup_steps must be int or null, not 10.5"),
    ("model: 64\n", "{path}:1: model must be dict, not 64"),
    ("optimizer: sgd\n", "{path}:1: optimizer must be one of lamb, adamw, not 'sgd'"),
    ("batch_size: 0\n", "{path}:1: batch_size must be at least 1, not 0"),
    ("seed: 1\nseed: 2\n", "{path}:2: key 'seed' appears twice (lines 1 and 2)"),
    ("batch_size: [1, 2\n", "{path}:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("- a list\n- not a mapping\n", "{path}: a config file must be a mapping of keys to values"),
])
def test_pretrain_run_config_mistakes(prepared, tmp_path, capsys, yaml, message) -> None:
    config = write(tmp_path / "bad.yaml", yaml.encode())
    code, _, err = cli(capsys, "pretrain", "run", "--data", prepared, "--out", tmp_path / "run", "--preset", "tiny",
                       "--max-steps", 1, "--config", config)
    assert error_line(code, err).startswith(message.format(path=config))
    assert not (tmp_path / "run").exists()


def test_yaml_numbers_without_a_dot_are_floats(tmp_path) -> None:
    # YAML 1.1 (PyYAML) reads 1e-4 as a string; a float field takes it as the number it means.
    config = write(tmp_path / "lr.yaml", b"learning_rate: 1e-4\nwarmup_ratio: 0\n")
    settings = load_settings(PretrainSettings, config)
    assert (settings.learning_rate, settings.warmup_ratio) == (1e-4, 0.0)
    assert isinstance(settings.warmup_ratio, float)
