"""`albertkit prune`: importance on the dev file, a smaller folder that predicts as albertkit computed it, an
optional recovery fine-tune, and one-line refusals."""

import json

import pytest
import torch
from test_finetune import FAST, base_model, classifier, sentiment_files  # noqa: F401  (fixtures)

from albertkit.cli import main
from albertkit.inference.predict import evaluate_model, load_finetuned
from albertkit.train.prune import least_important


def test_least_important_takes_the_lowest_and_keeps_one():
    assert least_important([0.3, 0.1, 0.5, 0.2], 0.5) == [1, 3]
    assert least_important([0.3, 0.1], 0.99) == [1]


def test_prune_halves_heads_and_ffn_and_records_metrics(classifier, sentiment_files, tmp_path):  # noqa: F811
    out = tmp_path / "pruned"
    assert main(["prune", "--model", str(classifier / "best"), "--dev", str(sentiment_files / "dev.tsv"),
                 "--out", str(out), "--heads", "0.5", "--ffn", "0.5"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["intermediate_size"] == 64
    assert [len(v) for v in config["pruned_heads"].values()] == [1]
    info = json.loads((out / "albertkit.json").read_text())["pruning"]
    assert info["parameters_after"] < info["parameters_before"]
    # The folder's own dev accuracy is what prune measured right after pruning.
    again = evaluate_model(out, sentiment_files / "dev.tsv")
    assert again["accuracy"] == pytest.approx(info["dev_after_pruning"]["accuracy"])
    model, _, _ = load_finetuned(out)
    assert model.albert.encoder.albert_layer_groups[0].albert_layers[0].attention.query.weight.shape == (32, 64)


def test_the_most_important_head_is_kept(classifier, sentiment_files):  # noqa: F811
    from albertkit.tasks.spec import featurize, read_examples
    from albertkit.train.prune import measure_importance

    model, tokenizer, spec = load_finetuned(classifier / "best")
    features = featurize(spec, tokenizer, read_examples(spec, sentiment_files / "dev.tsv"))
    heads, neurons = measure_importance(model, features, tokenizer.pad_token_id)
    assert heads[0].shape == (2,) and neurons[0].shape == (128,)
    assert float((heads[0] ** 2).sum()) == pytest.approx(1.0, abs=1e-5)
    assert all(p.requires_grad for p in model.parameters())  # gates gone, weights trainable again
    # Removing the head ranked least important hurts the dev loss less than removing the other.
    losses = []
    for head in range(2):
        scaled = load_finetuned(classifier / "best")[0]
        size = scaled.albert.encoder.albert_layer_groups[0].albert_layers[0].attention.head_size
        with torch.no_grad():
            scaled.albert.encoder.albert_layer_groups[0].albert_layers[0].attention.dense.weight[
                :, head * size:(head + 1) * size] = 0
        from albertkit.data.batching import collate
        with torch.no_grad():
            losses.append(float(scaled(**collate(features, tokenizer.pad_token_id)).loss))
    assert losses[int(heads[0].argmin())] <= losses[int(heads[0].argmax())]


def test_recovery_fine_tune_trains_the_pruned_model(classifier, sentiment_files, tmp_path):  # noqa: F811
    out = tmp_path / "recovered"
    assert main(["prune", "--model", str(classifier / "best"), "--dev", str(sentiment_files / "dev.tsv"),
                 "--out", str(out), "--heads", "0.5", "--ffn", "0.75", "--recover-train",
                 str(sentiment_files / "train.tsv"), "--recover-epochs", "2", "--recover-lr", "1e-3",
                 "--batch-size", "16"]) == 0
    info = json.loads((out / "albertkit.json").read_text())["pruning"]
    assert info["recovery_steps"] == 40  # 320 rows / 16, two epochs
    assert info["dev_after_recovery"]["accuracy"] == pytest.approx(
        evaluate_model(out, sentiment_files / "dev.tsv")["accuracy"])
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 32
    assert (out / "recovery" / "log.jsonl").is_file() and not (out / "recovery" / "best").exists()


@pytest.mark.parametrize("flags, message", [
    (["--heads", "1"], "--heads 1 is the share of heads to remove: give a fraction in [0, 1)"),
    (["--ffn", "1.0"], "--ffn 1 is the share of ffn to remove"),
    (["--recover-epochs", "3"], "--recover-epochs, --recover-lr and --recover-time-budget need --recover-train"),
])
def test_bad_prune_targets_are_one_line_errors(classifier, sentiment_files, tmp_path, flags, message,  # noqa: F811
                                                capsys):
    assert main(["prune", "--model", str(classifier / "best"), "--dev", str(sentiment_files / "dev.tsv"),
                 "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_ner_model_prunes(model_folders, tmp_path):
    import shutil

    from builders import NER_LABELS

    from albertkit.modeling.folder import write_model_info
    from albertkit.tasks.spec import TaskSpec

    folder = tmp_path / "ner"
    shutil.copytree(model_folders["ner"], folder)
    write_model_info(folder, {"task": "ner", "task_spec": TaskSpec("ner", labels=list(NER_LABELS.values())).to_dict()})
    (tmp_path / "dev.tsv").write_text("the film is wonderful\tB-PER I-PER O O\nour hero was dull\tO B-LOC O O\n" * 8)
    out = tmp_path / "pruned"
    assert main(["prune", "--model", str(folder), "--dev", str(tmp_path / "dev.tsv"), "--out", str(out),
                 "--heads", "0.5", "--ffn", "0.25"]) == 0
    info = json.loads((out / "albertkit.json").read_text())
    assert info["task"] == "ner" and info["pruning"]["intermediate_size"] == 96
    assert evaluate_model(out, tmp_path / "dev.tsv")["examples"] == 16
