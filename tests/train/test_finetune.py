"""`albertkit finetune / evaluate / predict` for every task type, LoRA, a frozen encoder, and exact resume."""

import json
import random

import pytest
import torch
from conftest import sigkill_after_checkpoint
from safetensors.torch import load_file

from albertkit.cli import main
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertForPreTraining
from albertkit.report.runlog import read_log
from albertkit.tokenization.sentencepiece import AlbertTokenizer

WORDS = ["cat", "farmer", "sister", "train", "teacher", "river", "bird", "door", "garden", "bus", "apple", "coat", "road"]
FAST = ["--batch-size", "16", "--log-every", "5", "--seed", "1"]


@pytest.fixture(scope="module")
def base_model(prepared_corpus, tmp_path_factory):
    """A small pretraining-format folder (2 layers, hidden 64) with the corpus tokenizer."""
    out = tmp_path_factory.mktemp("base") / "model"
    tokenizer = AlbertTokenizer.from_pretrained(prepared_corpus / "tok")
    config = AlbertConfig(vocab_size=tokenizer.vocab_size, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=128, max_position_embeddings=512)
    torch.manual_seed(0)
    AlbertForPreTraining(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def keyword_rows(n: int, seed: int) -> list[str]:
    """Label `positive` exactly when the sentence mentions a bird: learnable in seconds."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.sample(WORDS, 5)
        rows.append(f"the {' the '.join(words)}\t{'positive' if 'bird' in words else 'negative'}")
    return rows


@pytest.fixture(scope="module")
def sentiment_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    (root / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(keyword_rows(320, 0)) + "\n")
    (root / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(keyword_rows(80, 1)) + "\n")
    return root


@pytest.fixture(scope="module")
def classifier(base_model, sentiment_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "run"
    assert main(["finetune", "--task", "classification", "--model", str(base_model), "--out", str(out),
                 "--train", str(sentiment_files / "train.tsv"), "--dev", str(sentiment_files / "dev.tsv"),
                 "--test", str(sentiment_files / "dev.tsv"), "--epochs", "8", "--lr", "3e-3", *FAST]) == 0
    return out


def test_classifier_learns_and_keeps_the_best(classifier):
    best = json.loads((classifier / "best" / "albertkit.json").read_text())
    assert best["task_spec"]["labels"] == ["negative", "positive"]
    test = json.loads((classifier / "test_metrics.json").read_text())
    assert test["accuracy"] > 0.9
    evals = [r for r in read_log(classifier) if r["kind"] == "eval"]
    assert max(r["accuracy"] for r in evals) == pytest.approx(test["accuracy"])
    assert sum(map(sum, test["confusion_matrix"])) == 80
    # the test figures reach the model card too
    recorded = best["evaluations"]["test"]
    assert recorded["metrics"]["accuracy"] == pytest.approx(test["accuracy"]) and recorded["examples"] == 80
    assert "test" in (classifier / "best" / "README.md").read_text()


def test_best_folder_loads_in_transformers_with_the_same_logits(classifier, sentiment_files):
    import transformers

    from albertkit.modeling.model import AlbertForSequenceClassification

    theirs = transformers.AlbertForSequenceClassification.from_pretrained(classifier / "best").eval()
    assert theirs.config.id2label == {0: "negative", 1: "positive"}
    ours = AlbertForSequenceClassification.from_pretrained(classifier / "best").eval()
    batch = AlbertTokenizer.from_pretrained(classifier / "best")(
        ["the bird the door", "the cat the road the apple"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, theirs(**batch).logits, atol=1e-5, rtol=1e-5)


def test_evaluate_and_predict(classifier, sentiment_files, tmp_path, capsys):
    assert main(["evaluate", "--model", str(classifier / "best"), "--data", str(sentiment_files / "dev.tsv"),
                 "--output", str(tmp_path / "m.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == json.loads((tmp_path / "m.json").read_text())["accuracy"] > 0.9
    unlabeled = tmp_path / "texts.tsv"
    unlabeled.write_text("sentence\nthe bird the bus\nthe cat the coat\n")
    assert main(["predict", "--model", str(classifier / "best"), "--input", str(unlabeled),
                 "--output", str(tmp_path / "p.jsonl")]) == 0
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["label"] for r in records] == ["positive", "negative"]
    assert sum(records[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert main(["predict", "--model", str(classifier / "best"), "--input", str(unlabeled),
                 "--output", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "line,label,p_negative,p_positive"


def test_unknown_label_at_evaluation_names_file_and_line(classifier, tmp_path, capsys):
    bad = tmp_path / "dev.tsv"
    bad.write_text("sentence\tlabel\nthe bird\tpositive\nthe cat\tneutral\n")
    assert main(["evaluate", "--model", str(classifier / "best"), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:3" in err and "neutral" in err


def run_task(task, base_model, tmp_path, train, dev, *extra):
    out = tmp_path / task
    code = main(["finetune", "--task", task, "--model", str(base_model), "--train", str(train), "--dev", str(dev),
                 "--out", str(out), "--max-steps", "4", "--eval-every", "2", *FAST, *extra])
    assert code == 0
    return out


def test_pair_and_regression(base_model, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"the {a}\tthe {b}\t{int(a == b)}\n" for a in WORDS[:6] for b in WORDS[:6]))
    out = run_task("pair", base_model, tmp_path, pairs, pairs)
    evals = [r for r in read_log(out) if r["kind"] == "eval"]
    assert {"accuracy", "macro_f1", "mcc"} <= set(evals[-1])
    scores = tmp_path / "scores.tsv"
    scores.write_text("".join(f"the {a}\tthe {b}\t{i % 5}.5\n" for i, (a, b) in enumerate(zip(WORDS[:-1], WORDS[1:], strict=True))))
    out = run_task("regression", base_model, tmp_path, scores, scores, "--batch-size", "4")
    assert json.loads((out / "best" / "config.json").read_text())["problem_type"] == "regression"
    assert {"pearson", "spearman", "mse"} <= set([r for r in read_log(out) if r["kind"] == "eval"][-1])


def test_ner_predicts_entities_with_offsets(base_model, tmp_path):
    conll = tmp_path / "ner.conll"
    sentences = [[("the", "O"), ("farmer", "B-PER"), ("visits", "O"), ("river", "B-LOC")]] * 20
    conll.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n")
    out = run_task("ner", base_model, tmp_path, conll, conll, "--lr", "5e-3", "--max-steps", "30")
    assert main(["predict", "--model", str(out / "best"), "--input", str(conll), "--output", str(tmp_path / "n.jsonl")]) == 0
    record = json.loads((tmp_path / "n.jsonl").read_text().splitlines()[0])
    assert record["tags"] == ["O", "B-PER", "O", "B-LOC"]
    assert record["entities"][0] == {"type": "PER", "start": 4, "end": 10, "text": "farmer", "words": [1, 2]}
    assert len(record["scores"]) == 4 and all(0 < score <= 1 for score in record["scores"])


def test_qa_answers_with_spans(base_model, tmp_path):
    context = "the farmer visits the river before noon"
    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": f"q{i}", "question": "who visits the river", "answers": [{"text": "farmer", "answer_start": 4}]}
        for i in range(16)]}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad))
    out = run_task("qa", base_model, tmp_path, path, path, "--lr", "5e-3", "--max-steps", "30", "--max-seq-length", "64",
                   "--max-query-length", "16", "--doc-stride", "16")
    assert main(["predict", "--model", str(out / "best"), "--input", str(path), "--output", str(tmp_path / "q.jsonl")]) == 0
    record = json.loads((tmp_path / "q.jsonl").read_text().splitlines()[0])
    assert record["answer"] == context[record["start"]:record["end"]] == "farmer"


def test_lora_saves_a_plain_folder_and_freeze_keeps_the_encoder(base_model, sentiment_files, tmp_path):
    import transformers

    lora = run_task("classification", base_model, tmp_path / "lora", sentiment_files / "train.tsv",
                    sentiment_files / "dev.tsv", "--lora-r", "4", "--lr", "1e-2")
    saved = load_file(str(lora / "final" / "model.safetensors"))
    assert not any("lora" in key for key in saved)
    base = load_file(str(base_model / "model.safetensors"))
    key = "albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight"
    assert not torch.equal(saved[key], base[key])  # the merged adapter changed the shared layer
    transformers.AlbertForSequenceClassification.from_pretrained(lora / "final")

    frozen = run_task("classification", base_model, tmp_path / "frozen", sentiment_files / "train.tsv",
                      sentiment_files / "dev.tsv", "--freeze-encoder", "--lr", "1e-2")
    saved = load_file(str(frozen / "final" / "model.safetensors"))
    assert all(torch.equal(saved[k], base[k]) for k in base if k.startswith("albert.") and k in saved)
    start = next(r for r in read_log(frozen) if r["kind"] == "start")
    assert start["trainable_parameters"] == 64 * 2 + 2


def test_vocabulary_mismatch_and_long_sequences_are_user_errors(base_model, sentiment_files, tmp_path, capsys):
    args = ["finetune", "--task", "classification", "--model", str(base_model), "--train",
            str(sentiment_files / "train.tsv"), "--dev", str(sentiment_files / "dev.tsv"), "--out", str(tmp_path / "o")]
    assert main([*args, "--max-seq-length", "4096"]) == 2
    assert "max_seq_length 4096 is above the model's max_position_embeddings 512" in capsys.readouterr().err
    config = tmp_path / "task.yaml"
    config.write_text("learning_rate: 0.1\nepochz: 2\n")
    assert main([*args, "--config", str(config)]) == 2
    assert "task.yaml:2: unknown config key 'epochz'; did you mean 'epochs'?" in capsys.readouterr().err


@pytest.mark.slow
def test_finetune_sigkill_then_resume_is_bitwise_identical(base_model, sentiment_files, tmp_path):
    args = ["finetune", "--task", "classification", "--model", str(base_model), "--train",
            str(sentiment_files / "train.tsv"), "--dev", str(sentiment_files / "dev.tsv"), "--max-steps", "16",
            "--save-every", "4", "--eval-every", "8", *FAST]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main([*args, "--out", str(straight)]) == 0
    sigkill_after_checkpoint([*args, "--out", str(killed)], killed, step=8)
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(killed / "final" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_multi_label_learns_each_label_and_predict_uses_sigmoid(base_model, tmp_path):
    def rows(n: int, seed: int) -> str:
        rng = random.Random(seed)
        lines = ["text\tlabels"]
        for _ in range(n):
            words = rng.sample(WORDS, 5)
            labels = [name for name, word in (("animal", "bird"), ("vehicle", "bus")) if word in words] or ["other"]
            lines.append(f"the {' the '.join(words)}\t{','.join(labels)}")
        return "\n".join(lines) + "\n"

    (tmp_path / "train.tsv").write_text(rows(320, 0))
    (tmp_path / "dev.tsv").write_text(rows(80, 1))
    out = tmp_path / "run"
    assert main(["finetune", "--task", "multi_label", "--model", str(base_model), "--out", str(out), "--train",
                 str(tmp_path / "train.tsv"), "--dev", str(tmp_path / "dev.tsv"), "--epochs", "8", "--lr", "3e-3",
                 *FAST]) == 0
    assert json.loads((out / "best" / "config.json").read_text())["problem_type"] == "multi_label_classification"
    assert main(["evaluate", "--model", str(out / "best"), "--data", str(tmp_path / "dev.tsv"), "--output",
                 str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["micro_f1"] > 0.9
    assert main(["predict", "--model", str(out / "best"), "--input", str(tmp_path / "dev.tsv"), "--output",
                 str(tmp_path / "p.jsonl")]) == 0
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert set(records[0]["probabilities"]) == {"animal", "other", "vehicle"}
    both = [r for r, line in zip(records, rows(80, 1).splitlines()[1:], strict=True) if "animal,vehicle" in line]
    assert both and sum(r["labels"] == ["animal", "vehicle"] for r in both) >= len(both) - 1
