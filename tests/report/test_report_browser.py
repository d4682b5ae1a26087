"""Render report.html in headless Chromium and check the page a person would see; keeps the screenshot."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from albertkit.report.render import write_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WIDTH, HEIGHT = 1200, 2000
LINE_BLUE = np.array([37, 99, 235])  # the first series' color in every chart


def write_classification_run(run_dir: Path) -> None:
    """The log and folders of a 600-step sentiment fine-tuning run, with falling loss and rising accuracy."""
    rng = np.random.default_rng(0)
    t0 = 1_760_000_000.0
    records = [{"kind": "start", "step": 0, "time": t0, "config": {"batch_size": 32, "learning_rate": 3e-5},
                "world_size": 1, "device": "cpu", "total_steps": 600, "steps_per_epoch": 200,
                "task": "classification", "data": "sentiment_train.tsv", "parameters": 1_234_567}]
    for step in range(10, 601, 10):
        records.append({"kind": "train", "step": step, "time": t0 + step / 4,
                        "loss": 0.69 * math.exp(-step / 250) + 0.15 + float(rng.normal(0, 0.03)),
                        "lr": 3e-5 * min(step / 60, 1.0) * (1 - step / 600) / 0.9,
                        "tokens_per_second": 21000 + float(rng.normal(0, 800)), "grad_norm": 2.0 - step / 600,
                        "epoch": step / 200})
        if step % 100 == 0:
            correct = 40 + step // 30
            records.append({"kind": "eval", "step": step, "time": t0 + step / 4, "loss": 0.7 - step / 1500,
                            "accuracy": correct / 100, "macro_f1": correct / 100 - 0.01,
                            "confusion_matrix": [[correct // 2, 50 - correct // 2], [50 - correct // 2, correct // 2]],
                            "labels": ["negative", "positive"]})
    records.append({"kind": "end", "step": 600, "time": t0 + 150, "steps": 600, "epochs_completed": 3.0,
                    "stopped_because": "max_steps", "seconds": 150.0, "tokens_per_second": 21000.0,
                    "best_metric": 0.6, "best_step": 600, "skipped_steps": 0, "accuracy": 0.6})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "config.yaml").write_text("batch_size: 32\nlearning_rate: 3.0e-05\nmax_steps: 600\n")
    for folder in ("checkpoints/step-00000600", "final", "best"):
        (run_dir / folder).mkdir(parents=True)
        (run_dir / folder / "model.safetensors").write_bytes(b"\0" * 2048)


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="headless Chromium (/usr/bin/chromium) is not installed")
def test_report_renders_in_chromium(tmp_path):
    image_module = pytest.importorskip("matplotlib.image")
    run_dir = tmp_path / "run"
    write_classification_run(run_dir)
    html = write_report(run_dir)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={screenshot}", f"--window-size={WIDTH},{HEIGHT}", html.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    shutil.copy(run_dir / "report.md", ARTIFACTS / "report.md")
    pixels = image_module.imread(screenshot)[..., :3]  # floats in [0, 1]
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    gray = pixels.mean(axis=2)
    assert gray.std() > 0.05, "the screenshot is blank"
    # The charts loaded: many pixels carry the curves' blue (a broken <img> would show none).
    blue = np.abs(pixels * 255 - LINE_BLUE).max(axis=2) < 30
    assert blue.sum() > 1000, f"only {blue.sum()} pixels of chart blue: the PNGs did not render"
    # Text at the top (the title and summary) and charts further down: the page is not cut short.
    assert (gray[:400] < 0.5).sum() > 2000 and (gray[1000:] < 0.5).sum() > 2000
