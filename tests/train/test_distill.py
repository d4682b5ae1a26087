"""`albertkit distill`: a smaller student learns the teacher's task; the loss terms; NER and unlabeled text;
refusals."""

import json
import shutil

import pytest
import torch
from builders import NER_LABELS
from safetensors.torch import load_file
from test_finetune import FAST, base_model, classifier, keyword_rows, sentiment_files  # noqa: F401  (fixtures)

from albertkit.cli import main
from albertkit.modeling.folder import write_model_info
from albertkit.tasks.spec import TaskSpec
from albertkit.train.distill import DistillationTask, DistillSettings, student_config

STUDENT = ["--num-hidden-layers", "1", "--hidden-size", "32", "--num-attention-heads", "2",
           "--intermediate-size", "64"]


def test_student_config_keeps_the_teachers_vocabulary_and_labels():
    from albertkit.modeling.config import AlbertConfig

    teacher = AlbertConfig(vocab_size=90, hidden_size=64, num_attention_heads=4, num_hidden_groups=2,
                           num_hidden_layers=4, id2label={0: "a", 1: "b", 2: "c"}, pruned_heads={0: [1]})
    config = student_config(teacher, "tiny", {"num_hidden_layers": 2, "hidden_size": 128})
    assert (config.vocab_size, config.num_labels, config.hidden_size, config.num_hidden_layers) == (90, 3, 128, 2)
    assert config.intermediate_size == 1024 and config.num_hidden_groups == 1 and config.pruned_heads is None


def test_soft_loss_is_zero_for_the_teachers_own_logits_and_scaled_by_t_squared():
    task = DistillationTask.__new__(DistillationTask)
    task.spec, task.options = TaskSpec("classification", labels=["a", "b"]), DistillSettings(temperature=2.0)
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    assert float(task._soft(logits, logits)) == pytest.approx(0.0, abs=1e-7)
    p, q = torch.softmax(logits / 2, -1), torch.softmax(torch.zeros(2, 2), -1)
    expected = float((q * (q.log() - p.log())).sum(-1).mean()) * 4
    assert float(task._soft(logits, torch.zeros(2, 2))) == pytest.approx(expected, rel=1e-5)
    labels = torch.tensor([-100, 1])  # unlabeled rows do not count
    assert float(task._hard(logits, labels)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[1:], labels[1:])), rel=1e-6)


def test_distilled_student_learns_is_smaller_and_loads_in_transformers(classifier, sentiment_files,  # noqa: F811
                                                                       tmp_path):
    import transformers

    out = tmp_path / "student"
    (tmp_path / "more.tsv").write_text("sentence\n" + "\n".join(r.split("\t")[0] for r in keyword_rows(80, 7)) + "\n")
    assert main(["distill", "--teacher", str(classifier / "best"), "--train", str(sentiment_files / "train.tsv"),
                 "--dev", str(sentiment_files / "dev.tsv"), "--out", str(out), "--unlabeled", str(tmp_path / "more.tsv"),
                 *STUDENT, "--epochs", "6", "--lr", "3e-3", "--hidden-weight", "1", "--temperature", "2", *FAST]) == 0
    best = out / "best"
    info = json.loads((best / "albertkit.json").read_text())
    assert info["distilled_from"] == str(classifier / "best")
    start = next(json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"start"' in line)
    assert start["student_parameters"] < start["teacher_parameters"] and start["train_examples"] == 400
    evals = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"kind": "eval"' in line]
    assert max(e["accuracy"] for e in evals) >= 0.9
    assert not any(k.startswith(("projection", "student.")) for k in load_file(best / "model.safetensors"))
    theirs = transformers.AlbertForSequenceClassification.from_pretrained(best).eval()
    assert theirs.config.num_hidden_layers == 1 and theirs.config.hidden_size == 32


def test_ner_teacher_distills(model_folders, tmp_path):
    teacher = tmp_path / "ner"
    shutil.copytree(model_folders["ner"], teacher)
    labels = list(NER_LABELS.values())
    write_model_info(teacher, {"task": "ner", "task_spec": TaskSpec("ner", labels=labels).to_dict()})
    rows = ["the film is wonderful\tB-PER I-PER O O", "our hero was dull\tO B-LOC O O"] * 20
    (tmp_path / "ner.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher), "--train", str(tmp_path / "ner.tsv"), "--dev",
                 str(tmp_path / "ner.tsv"), "--out", str(out), *STUDENT, "--epochs", "1", "--batch-size", "8"]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()
              if '"kind": "train"' in line]
    assert losses and all(loss == loss and loss > 0 for loss in losses)
    assert json.loads((out / "best" / "config.json").read_text())["id2label"]["1"] == "B-PER"


@pytest.mark.parametrize("flags, message", [
    (["--hidden-size", "128", "--num-attention-heads", "2", "--intermediate-size", "512"],
     "is larger than its teacher"),
    (["--soft-weight", "1.5"], "soft_weight is a share of the loss between 0 and 1"),
    (["--student-preset", "huge"], "unknown preset 'huge'"),
])
def test_bad_students_are_one_line_errors(classifier, sentiment_files, tmp_path, flags, message,  # noqa: F811
                                          capsys):
    assert main(["distill", "--teacher", str(classifier / "best"), "--train", str(sentiment_files / "train.tsv"),
                 "--dev", str(sentiment_files / "dev.tsv"), "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_regression_teacher_distills_with_unlabeled_rows(model_folders, tmp_path):
    from builders import TINY, movie_sentences

    from albertkit.modeling.config import AlbertConfig
    from albertkit.modeling.model import AlbertForSequenceClassification
    from albertkit.tokenization.loading import load_tokenizer

    tokenizer = load_tokenizer(model_folders["cls"])
    torch.manual_seed(0)
    teacher = tmp_path / "reg"
    AlbertForSequenceClassification(AlbertConfig.from_preset(
        "tiny", vocab_size=tokenizer.vocab_size, id2label={0: "LABEL_0"}, problem_type="regression",
        **TINY)).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    spec = TaskSpec("regression", header=True)
    write_model_info(teacher, {"task": "regression", "task_spec": spec.to_dict()})
    sentences = movie_sentences(64, seed=2)
    (tmp_path / "train.tsv").write_text("sentence\tscore\n" + "".join(f"{s}\t{i % 5}\n" for i, s in enumerate(sentences)))
    (tmp_path / "more.tsv").write_text("sentence\n" + "".join(f"{s}\n" for s in movie_sentences(16, seed=9)))
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher), "--train", str(tmp_path / "train.tsv"), "--dev",
                 str(tmp_path / "train.tsv"), "--out", str(out), "--unlabeled", str(tmp_path / "more.tsv"),
                 *STUDENT, "--epochs", "1", "--batch-size", "16"]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()
              if '"kind": "train"' in line]
    assert losses and all(loss == loss for loss in losses)  # unlabeled rows (NaN labels) never reach the loss
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["num_hidden_layers"] == 1
