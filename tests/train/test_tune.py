"""`albertkit tune` (optuna over a fine-tuning config) and `finetune --seeds`: tables, best config, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import build_model_folders, movie_sentences

from albertkit.cli import main
from albertkit.errors import UserError
from albertkit.train.finetune import FinetuneSettings
from albertkit.train.seeds import mean_and_std, parse_seeds, run_seeds
from albertkit.train.settings import load_settings
from albertkit.train.tune import PruneOnEvaluation, read_tune_config, run_tuning

POSITIVE = ("wonderful", "gripping", "beautiful", "moving", "brilliant")
TASK = "task: classification\nmax_steps: 4\neval_every: 2\nbatch_size: 8\nlog_every: 2\nsave_every_minutes: 0\n"


def rows(count: int, seed: int) -> str:
    return "sentence\tlabel\n" + "".join(
        f"{t}\t{'pos' if any(a in t for a in POSITIVE) else 'neg'}\n" for t in movie_sentences(count, seed))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tune")
    model = build_model_folders(root / "models")["mlm"]
    (root / "train.tsv").write_text(rows(64, 1), encoding="utf-8")
    (root / "dev.tsv").write_text(rows(32, 2), encoding="utf-8")
    (root / "task.yaml").write_text(TASK, encoding="utf-8")
    return {"root": root, "model": model, "train": root / "train.tsv", "dev": root / "dev.tsv",
            "task": root / "task.yaml"}


def tune_file(files: dict[str, Path], tmp_path: Path, search: str, extra: str = "") -> Path:
    path = tmp_path / "tune.yaml"
    path.write_text(f"config: {files['task']}\nmodel: {files['model']}\ntrain: {files['train']}\n"
                    f"dev: {files['dev']}\nout: {tmp_path / 'out'}\n{extra}search:\n{search}", encoding="utf-8")
    return path


def test_tune_writes_trials_best_config_and_plot(files: dict[str, Path], tmp_path: Path) -> None:
    path = tune_file(files, tmp_path, "  learning_rate: {low: 1e-4, high: 1e-2, log: true}\n"
                     "  batch_size: [4, 8]\n  dropout: {low: 0.0, high: 0.2}\n", "trials: 3\npruner: none\n")
    summary = run_tuning(path)
    out = tmp_path / "out"
    assert summary["trials"] == {"complete": 3, "pruned": 0, "fail": 0} and summary["metric"] == "accuracy"
    table = [line.split("\t") for line in (out / "trials.tsv").read_text().splitlines()]
    assert table[0][:6] == ["trial", "state", "accuracy", "last_evaluation", "seconds", "best_step"]
    assert table[0][6:] == ["learning_rate", "batch_size", "dropout", "error"] and len(table) == 4
    assert max(float(r[2]) for r in table[1:]) == pytest.approx(summary["best_value"], abs=1e-5)
    for trial in range(3):  # each trial's value is its run's best dev accuracy
        log = [json.loads(line) for line in (out / "trials" / f"trial-00{trial}" / "log.jsonl").read_text().splitlines()]
        assert float(table[trial + 1][2]) == pytest.approx(max(r["accuracy"] for r in log if r["kind"] == "eval"),
                                                           abs=1e-5)
    best = load_settings(FinetuneSettings, out / "best.yaml")
    assert best.learning_rate == summary["best_params"]["learning_rate"] and best.max_steps == 4
    assert best.batch_size == summary["best_params"]["batch_size"] and best.task == "classification"
    assert json.loads((out / "tune.json").read_text()) == json.loads(json.dumps(summary))
    assert (out / "tune.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((out / "trials" / f"trial-00{summary['best_trial']}" / "best" / "config.json").read_text())
    assert config["hidden_dropout_prob"] == pytest.approx(summary["best_params"]["dropout"])


class FakeTrial:
    def __init__(self, prune_at: int):
        self.reports: list[tuple[float, int]] = []
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return len(self.reports) >= self.prune_at


def test_pruning_callback_reports_evaluations_and_stops() -> None:
    import optuna

    trial = FakeTrial(prune_at=2)
    callback = PruneOnEvaluation(trial, "accuracy")
    callback.on_evaluate(10, {"accuracy": 0.5, "loss": 1.0})
    callback.on_evaluate(15, {"loss": 1.0})  # no metric: nothing to report
    with pytest.raises(optuna.TrialPruned, match="accuracy 0.6000 at evaluation 2 \\(step 20\\)"):
        callback.on_evaluate(20, {"accuracy": 0.6})
    assert trial.reports == [(0.5, 1), (0.6, 2)]


@pytest.mark.parametrize(("search", "extra", "message"), [
    ("  lr: {low: 1e-4, high: 1e-2}\n", "", ":7: unknown tune parameter 'lr'; did you mean 'learning_rate'?"),
    ("  max_grad_norm: [1.0]\n", "", ":7: unknown tune parameter 'max_grad_norm'; known: learning_rate"),
    ("  learning_rate: {low: 1e-2, high: 1e-4}\n", "", ":7: learning_rate: low 1e-2 is above high 1e-4"),
    ("  warmup_ratio: {low: 0, high: 0.2, log: true}\n", "", ":7: warmup_ratio: a log range needs low > 0"),
    ("  batch_size: [8, 0]\n", "", ":7: batch_size must be at least 1, not 0"),
    ("  epochs: 3\n", "", ":7: epochs must be a list of choices or {low: ..., high: ..., log: true|false}"),
    ("  seed: [0, 1]\n", "trails: 3\n", ":6: unknown tune config key 'trails'; did you mean 'trials'?"),
    ("  seed: [0, 1]\n", "fixed: {lerning_rate: 0.1}\n", "unknown setting(s) lerning_rate"),
])
def test_bad_tune_configs_are_one_line_errors(files: dict[str, Path], tmp_path: Path, search: str, extra: str,
                                              message: str) -> None:
    path = tune_file(files, tmp_path, search, extra)
    with pytest.raises(UserError) as err:
        read_tune_config(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value) and "\n" not in str(err.value)


def test_tune_command_errors(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tune_file(files, tmp_path, "  seed: [0, 1]\n", "fixed: {max_seq_length: 100000}\ntrials: 2\n")
    assert main(["tune", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    # the error is the last line; warnings of the trials (a new head's initialised weights) may come before it
    assert err.splitlines()[-1].startswith(f"albertkit: error: {path}: no trial finished: trial 0: ")
    assert "max_seq_length 100000 is above the model's max_position_embeddings" in err
    assert main(["tune", "--config", str(path), "--model", str(tmp_path / "nowhere"), "--trials", "1"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_seeds_report_mean_and_std_and_keep_the_best(files: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "seeds"
    assert main(["finetune", "--config", str(files["task"]), "--model", str(files["model"]), "--train",
                 str(files["train"]), "--dev", str(files["dev"]), "--test", str(files["dev"]), "--out", str(out),
                 "--seeds", "3,5", "--lr", "3e-3"]) == 0
    summary = json.loads((out / "seeds.json").read_text())
    dev = {seed: max(json.loads(line).get("accuracy", 0) for line in (out / f"seed-{seed}" / "log.jsonl").open())
           for seed in (3, 5)}
    assert {int(s): r["dev"] for s, r in summary["seeds"].items()} == pytest.approx(dev)
    mean, std = mean_and_std(list(dev.values()))
    assert summary["dev_mean"] == pytest.approx(mean) and summary["dev_std"] == pytest.approx(std)
    assert summary["test_mean"] == pytest.approx(mean)  # the test file is the dev file here
    best = max(dev, key=dev.get)
    assert summary["best_seed"] == best
    assert (out / "best" / "model.safetensors").read_bytes() == (out / f"seed-{best}" / "best" /
                                                                  "model.safetensors").read_bytes()
    printed = capsys.readouterr().out
    assert f"dev accuracy {mean:.4f} ± {std:.4f} over seeds 3, 5 (sample std)" in printed
    assert main(["finetune", "--config", str(files["task"]), "--model", str(files["model"]), "--train",
                 str(files["train"]), "--dev", str(files["dev"]), "--out", str(tmp_path / "x"), "--seeds", "1,2",
                 "--seed", "4"]) == 2
    assert capsys.readouterr().err.strip() == "albertkit: error: give either --seed or --seeds, not both"


def test_parse_seeds() -> None:
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    with pytest.raises(UserError, match="integers separated by commas"):
        parse_seeds("0;1")
    with pytest.raises(UserError, match="distinct seeds"):
        parse_seeds("1,1")
    assert mean_and_std([0.5]) == (0.5, 0.0)
    with pytest.raises(UserError, match="give either --seed or --seeds"):
        run_seeds([0], "classification", "m", "t", "d", "o", seed=1)


def test_a_callback_that_raises_stops_the_run_and_closes_its_log(files: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from albertkit.report.runlog import RunLog, read_log
    from albertkit.train.events import TrainCallback
    from albertkit.train.finetune import run_finetuning

    closed: list[Path] = []
    close = RunLog.close
    monkeypatch.setattr(RunLog, "close", lambda self: (closed.append(self.path), close(self)))

    class Stop(TrainCallback):
        def on_evaluate(self, step: int, metrics: dict) -> None:
            raise optuna.TrialPruned("hopeless")

    with pytest.raises(optuna.TrialPruned, match="hopeless"):
        run_finetuning(None, files["model"], files["train"], files["dev"], tmp_path / "run",
                       config_path=files["task"], callbacks=[Stop()])
    assert closed == [tmp_path / "run" / "log.jsonl"]
    assert [r["step"] for r in read_log(tmp_path / "run") if r["kind"] == "eval"] == [2]
    assert not (tmp_path / "run" / "final").exists()
