"""The shipped YAML configs use only known keys and the paper's recipe where they claim it."""

from pathlib import Path

import pytest

from albertkit.tasks.spec import read_train_examples
from albertkit.train.finetune import FINETUNE_DEFAULTS, FinetuneOptions, _task_spec
from albertkit.train.loop import TrainConfig
from albertkit.train.pretrain import PretrainOptions
from albertkit.train.settings import dataclass_from, field_names, load_yaml_config, merge_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "pretrain").glob("*.yaml")), ids=lambda p: p.name)
def test_pretrain_configs_have_known_keys(path):
    values = merge_config(load_yaml_config(path), {}, field_names(TrainConfig, PretrainOptions), path)
    assert values["optimizer"] == "lamb"


def task_spec_of(path: Path):
    values = merge_config({**FINETUNE_DEFAULTS, **load_yaml_config(path)}, {},
                          field_names(TrainConfig, FinetuneOptions) | {"task"}, path)
    task = values.pop("task")
    dataclass_from(TrainConfig, values, path)
    return _task_spec(task, dataclass_from(FinetuneOptions, values, path))


@pytest.mark.parametrize("path", sorted((CONFIGS / "tasks").glob("*.yaml")), ids=lambda p: p.name)
def test_task_configs_have_known_keys_and_a_task(path):
    spec = task_spec_of(path)
    assert spec.task in {"classification", "pair", "regression", "ner", "qa"}


@pytest.mark.parametrize("name, data, task, labels", [
    ("sst2", "en/sst2/dev.tsv", "classification", ["0", "1"]),
    ("agnews", "en/agnews/test.tsv", "classification", ["Business", "Sci/Tech", "Sports", "World"]),
    ("chnsenticorp", "zh/chnsenticorp/dev.tsv", "classification", ["negative", "positive"]),
    ("afqmc", "zh/afqmc/dev.tsv", "pair", ["0", "1"]),
    ("resume_ner", "zh/ner_resume/dev.char.bmes", "ner", None),
])
def test_task_configs_read_their_data_set(shared_data, name, data, task, labels):
    spec, examples = read_train_examples(task_spec_of(CONFIGS / "tasks" / f"{name}.yaml"), shared_data / data)
    assert spec.task == task and len(examples) > 400
    if labels is not None:
        assert spec.labels == labels
    if task == "pair":
        assert all(ex.text and ex.text_pair for ex in examples)
    if task == "ner":
        assert {"B-NAME", "E-NAME"} <= set(spec.labels)


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
