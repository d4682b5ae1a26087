"""Training settings are defined once: the dataclass fields are the flags, the YAML keys, the defaults and the
saved config.yaml of every training command."""

import dataclasses
import logging

import pytest

from albertkit.cli import build_parser
from albertkit.errors import UserError
from albertkit.train.contrastive import ContrastiveSettings
from albertkit.train.finetune import FinetuneSettings
from albertkit.train.pretrain import PretrainSettings
from albertkit.train.settings import (
    TrainSettings,
    given_settings,
    load_settings,
    read_yaml_config,
    save_settings,
)

COMMANDS = {("pretrain", "run"): PretrainSettings, ("finetune",): FinetuneSettings,
            ("embed-train",): ContrastiveSettings}
REQUIRED = {("pretrain", "run"): ["--data", "D", "--out", "O"],
            ("finetune",): ["--model", "M", "--train", "T", "--dev", "D", "--out", "O"],
            ("embed-train",): ["--model", "M", "--out", "O", "--sentences", "S"]}


def subparser(*command: str):
    parser = build_parser()
    for word in command:
        parser = next(a for a in parser._actions if a.dest in ("command", "action")).choices[word]
    return parser


def option_strings(*command: str) -> set[str]:
    return {flag for action in subparser(*command)._actions for flag in action.option_strings}


def test_every_training_command_takes_the_same_loop_flags():
    loop_flags = {"--config", "--resume", "--lr", "--time-budget", "--batch-size", "--micro-batch-size",
                  "--max-steps", "--epochs", "--warmup-steps", "--warmup-ratio", "--schedule", "--optimizer",
                  "--eval-every", "--save-every", "--save-every-minutes", "--keep-last", "--log-every", "--seed",
                  "--precision", "--compile", "--early-stopping-patience", "--max-bad-steps", "--max-seq-length"}
    for command in COMMANDS:
        assert loop_flags <= option_strings(*command), command
    assert "--learning-rate" not in option_strings("embed-train")
    assert {"--skip-bad-rows", "--no-skip-bad-rows"} <= option_strings("finetune")
    assert {"--skip-bad-rows", "--no-skip-bad-rows"} <= option_strings("embed-train")
    assert "--skip-bad-rows" not in option_strings("pretrain", "run")


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_flags_fill_the_fields_they_are_named_after(command):
    args = build_parser().parse_args([*command, *REQUIRED[command], "--lr", "2e-3", "--time-budget", "5",
                                      "--no-compile", "--max-seq-length", "32"])
    assert given_settings(args, COMMANDS[command]) == {"learning_rate": 2e-3, "time_budget_minutes": 5.0,
                                                       "compile": False, "max_seq_length": 32}
    assert args.config is None and args.resume is False


def test_a_command_argument_named_like_a_yaml_section_is_no_setting():
    # `pretrain run --model DIR` is the folder to continue from; the `model:` section of a config is another thing.
    args = build_parser().parse_args(["pretrain", "run", "--data", "D", "--out", "O", "--model", "M"])
    assert args.model == "M" and given_settings(args, PretrainSettings) == {}


def test_each_command_has_its_own_defaults_and_help_shows_them():
    pretrain, finetune, contrastive = PretrainSettings(), FinetuneSettings(), ContrastiveSettings()
    assert (pretrain.optimizer, pretrain.learning_rate, pretrain.batch_size, pretrain.max_steps) == ("adamw", 1e-3, 16, 2000)
    assert (finetune.optimizer, finetune.learning_rate, finetune.epochs, finetune.max_steps) == ("adamw", 5e-5, 3.0, None)
    assert (contrastive.learning_rate, contrastive.batch_size, contrastive.warmup_ratio) == (3e-5, 64, 0.0)
    assert FinetuneSettings().skip_bad_rows is False and ContrastiveSettings().skip_bad_rows is False
    assert "peak learning rate (default: 0.001)" in " ".join(subparser("pretrain", "run").format_help().split())
    assert "peak learning rate (default: 5e-05)" in " ".join(subparser("finetune").format_help().split())
    # A subclass that only changes a default keeps the base field's help, flag and checks.
    with pytest.raises(UserError, match="optimizer must be one of lamb, adamw, not 'sgd'"):
        PretrainSettings(optimizer="sgd")


def test_flags_override_the_file_which_overrides_the_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 2e-3\nbatch_size: 16\nmodel:\n  num_hidden_layers: 2\n")
    settings = load_settings(PretrainSettings, path, {"batch_size": 8, "save_every_minutes": None})
    assert (settings.learning_rate, settings.batch_size, settings.save_every_minutes) == (2e-3, 8, None)
    assert settings.model == {"num_hidden_layers": 2} and settings.optimizer == "adamw"
    with pytest.raises(TypeError, match="unknown setting.* learnig_rate"):
        load_settings(PretrainSettings, None, {"learnig_rate": 1.0})


def test_saved_config_is_every_setting_and_loads_back(tmp_path):
    settings = load_settings(FinetuneSettings, None, {"task": "pair", "text_column": "q", "learning_rate": 3e-5})
    save_settings(tmp_path, settings, "finetune", {"model": "models/base", "test": None})
    text = (tmp_path / "config.yaml").read_text()
    assert text.startswith("# The settings of this run of `albertkit finetune`")
    assert "# model: models/base\n" in text and "# test:" not in text
    assert set(read_yaml_config(tmp_path / "config.yaml")[0]) == {f.name for f in dataclasses.fields(FinetuneSettings)}
    assert load_settings(FinetuneSettings, tmp_path / "config.yaml") == settings


def test_resuming_with_other_settings_says_which(tmp_path, caplog):
    save_settings(tmp_path, TrainSettings(max_steps=10), "finetune", {})
    with caplog.at_level(logging.WARNING):
        save_settings(tmp_path, TrainSettings(max_steps=20), "finetune", {}, resume=True)
    assert "resuming with settings that differ" in caplog.text and "max_steps 10 -> 20" in caplog.text


@pytest.mark.parametrize(("yaml", "message"), [
    ("pooling: max\n", r"c.yaml:1: pooling must be one of mean, cls, pooler, not 'max'"),
    ("skip_bad_rows: 1\n", r"c.yaml:1: skip_bad_rows must be bool, not 1"),
    ("max_seq_length: 2\n", r"c.yaml:1: max_seq_length must be at least 3, not 2"),
    ("temperature: null\n", r"c.yaml:1: temperature must be float, not None"),
])
def test_embed_train_settings_are_checked_like_the_others(tmp_path, yaml, message):
    (tmp_path / "c.yaml").write_text(yaml)
    with pytest.raises(UserError, match=message):
        load_settings(ContrastiveSettings, tmp_path / "c.yaml")


def test_a_bad_flag_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["embed-train", *REQUIRED[("embed-train",)], "--lr", "fast"])
    assert exit_info.value.code == 2 and "--lr: invalid float value: 'fast'" in capsys.readouterr().err
