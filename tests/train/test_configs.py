"""The shipped YAML configs use only known keys and the paper's recipe where they claim it."""

from pathlib import Path

import pytest

from albertkit.errors import UserError
from albertkit.tasks.spec import read_train_examples
from albertkit.train.finetune import FinetuneSettings, _task_spec
from albertkit.train.pretrain import PretrainSettings
from albertkit.train.settings import load_settings, read_yaml_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "pretrain").glob("*.yaml")), ids=lambda p: p.name)
def test_pretrain_configs_have_known_keys(path):
    settings = load_settings(PretrainSettings, path)
    assert settings.preset == path.stem
    if path.stem == "tiny":  # the small-machine recipe is pretrain run's defaults, word for word
        assert settings == PretrainSettings(preset="tiny", save_every_minutes=10, log_every=10)
    else:  # the paper's recipe, with none of the small-machine defaults
        assert (settings.optimizer, settings.masked_lm_prob, settings.max_ngram) == ("lamb", 0.15, 3)
        assert (settings.unigram_bias, settings.embedding_init) == (False, "random")


def task_spec_of(path: Path):
    return _task_spec(load_settings(FinetuneSettings, path))


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
    settings = load_settings(PretrainSettings, CONFIGS / "pretrain" / "base.yaml")
    assert (settings.learning_rate, settings.batch_size, settings.max_steps, settings.warmup_steps,
            settings.max_seq_length) == (0.00176, 4096, 125000, 3125, 512)


def test_unknown_key_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: 0.1\nlearnig_rate: 0.2\n")
    with pytest.raises(UserError, match=r"bad.yaml:2: unknown config key 'learnig_rate'; did you mean 'learning_rate'\?"):
        load_settings(PretrainSettings, path)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("learning_rate: 0.1\nbatch_size: [1, 2\n")
    with pytest.raises(UserError, match=r"broken.yaml:\d+: invalid YAML"):
        read_yaml_config(path)
