"""Shared test fixtures: where the real data sets are, and deterministic CPU settings."""

from pathlib import Path

import pytest
import torch
from bad_inputs import build_bad_input_folders

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Mixed Chinese and English with full-width forms, accents, quotes and special-token strings: tokenizer parity.
MIXED = [
    "我爱北京天安门 and I love NLP 2023年",
    "ALBERT模型在GLUE上表现很好！真的吗？",
    "价格是１２３４５元，ＯＫ吗？",
    "Café 咖啡 naïve  résumé",
    "[MASK]是中国的首都",
    "这是一个测试[SEP]第二句 <unk> 结束",
    "He said ``hello'' 然后走了\t…",
    "ｈｔｔｐ：／／ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ 网址",
]


@pytest.fixture(autouse=True, scope="session")
def _deterministic_cpu():
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets beside the repository; tests using them skip when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def write_synthetic_corpus(path: Path, documents: int = 40, seed: int = 0) -> Path:
    """English-like documents from a small grammar: enough structure for MLM and SOP to learn something."""
    import random

    rng = random.Random(seed)
    subjects = [
        "the cat",
        "a farmer",
        "my sister",
        "the old train",
        "our teacher",
        "the river",
        "a small bird",
    ]
    verbs = ["watches", "carries", "finds", "paints", "follows", "remembers", "visits"]
    objects = [
        "the red door",
        "a quiet garden",
        "the morning bus",
        "two green apples",
        "the long road",
        "a warm coat",
    ]
    tails = [
        "before noon",
        "every winter",
        "with great care",
        "near the bridge",
        "after the rain",
        "in silence",
    ]
    lines = []
    for _ in range(documents):
        for _ in range(rng.randint(2, 4)):
            sentences = [
                f"{rng.choice(subjects).capitalize()} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(tails)}."
                for _ in range(rng.randint(3, 6))
            ]
            lines.append(" ".join(sentences))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory) -> Path:
    """A folder with corpus.txt, tok/ (a 70-piece tokenizer) and data/ (prepared for length 64)."""
    from albertkit.data.prepare import prepare_pretraining_data
    from albertkit.tokenization.training import train_tokenizer

    root = tmp_path_factory.mktemp("corpus")
    corpus = write_synthetic_corpus(root / "corpus.txt", documents=60)
    train_tokenizer([corpus], root / "tok", vocab_size=70, lang="en")
    prepare_pretraining_data(
        [corpus], root / "tok", root / "data", max_seq_length=64, valid_fraction=0.1, workers=1
    )
    return root


def sigkill_after_checkpoint(argv: list[str], run_dir: Path, step: int) -> None:
    """Start `albertkit ARGV` in a subprocess and SIGKILL it as soon as checkpoint `step` is complete."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "albertkit.cli", *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = run_dir / "checkpoints" / f"step-{step:08d}" / "manifest.json"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (run_dir / "final").exists(), "the kill came too late to test anything"


def sample_texts(lang: str) -> list[str]:
    """The paragraphs and sentences of the quickstart sample that ships with the package."""
    from albertkit.samples import sample_path

    corpus = sample_path(lang, "corpus.txt").read_text(encoding="utf-8").splitlines()
    rows = sample_path(lang, "sentiment_train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line for line in corpus if line.strip()] + [row.split("\t")[0] for row in rows]


def write_bert_vocab(texts: list[str], path: Path, vocab_size: int = 1500) -> list[str]:
    """A WordPiece vocabulary in bert-base-chinese's layout: [PAD], [unused1..99], [UNK], [CLS], [SEP], [MASK]
    (ids 0, 100-103), then the pieces `tokenizers` learns from `texts`."""
    from tokenizers import BertWordPieceTokenizer

    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=[], show_progress=False)
    learned = [piece for piece, _ in sorted(trainer.get_vocab().items(), key=lambda item: item[1])]
    pieces = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]", *learned]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("".join(f"{piece}\n" for piece in pieces), encoding="utf-8")
    return pieces


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    """`builders.build_model_folders` once per session: tiny cls / mlm / ner / qa folders, their corpus."""
    from builders import build_model_folders

    return build_model_folders(tmp_path_factory.mktemp("model-folders"))


@pytest.fixture(scope="session")
def bad_input_folders(tmp_path_factory) -> dict[str, Path]:
    """The bad-input tests' tokenizer and model folders (tests/bad_inputs.py), built once for all of them."""
    return build_bad_input_folders(tmp_path_factory.mktemp("bad-input-models"))
