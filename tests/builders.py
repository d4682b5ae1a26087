"""Shared test material: tiny model folders of every head and a review-like grammar to train their tokenizer."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import (
    AlbertForMaskedLM,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
)

SUBJECTS = ["the film", "this movie", "the story", "the acting", "the plot", "our hero", "the music", "the ending"]
VERBS = ["is", "was", "feels", "seems", "remains"]
ADJECTIVES = ["wonderful", "terrible", "gripping", "boring", "beautiful", "awful", "moving", "dull", "brilliant"]
TAILS = ["from start to finish", "in every way", "for most of its length", "despite the cast", "at times", ""]
TINY = dict(embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def movie_sentences(count: int, seed: int = 0) -> list[str]:
    """Short review-like sentences from a small grammar: enough text for a tokenizer of 60 pieces."""
    rng = random.Random(seed)
    parts = ([rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(ADJECTIVES), rng.choice(TAILS)] for _ in range(count))
    return [" ".join(p for p in words if p) + " ." for words in parts]


def build_model_folders(root: Path) -> dict[str, Path]:
    """Randomly initialised 2-layer models (classification, masked LM, NER, QA) sharing one tokenizer, and a
    corpus."""
    from albertkit.tokenization.training import train_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(movie_sentences(400)) + "\n", encoding="utf-8")
    tokenizer = train_tokenizer([corpus], root / "tokenizer", vocab_size=60, lang="en")
    torch.manual_seed(0)
    heads = {
        "cls": AlbertForSequenceClassification(AlbertConfig.from_preset(
            "tiny", vocab_size=tokenizer.vocab_size, id2label={0: "negative", 1: "positive"}, **TINY)),
        "mlm": AlbertForMaskedLM(AlbertConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, **TINY)),
        "ner": AlbertForTokenClassification(AlbertConfig.from_preset(
            "tiny", vocab_size=tokenizer.vocab_size, id2label=NER_LABELS, **TINY)),
        "qa": AlbertForQuestionAnswering(AlbertConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, **TINY)),
    }
    folders = {"corpus": corpus}
    for name, model in heads.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    return folders


def build_served_folders(root: Path) -> dict[str, Path]:
    """`build_model_folders` plus a search index of the corpus by the classifier (as `serve --index` takes)."""
    from albertkit.inference.search import build_index

    folders = build_model_folders(root)
    build_index(folders["cls"], folders["corpus"], root / "index")
    return {**folders, "index": root / "index"}


def finetuned_classifier(model_folders: dict[str, Path], root: Path, rows: int = 60, seed: int = 3) -> tuple[Path, Path]:
    """The tiny random classifier copied as a fine-tuned folder (task settings in albertkit.json), and a labelled
    .tsv of `rows` sentences."""
    import shutil

    from albertkit.modeling.folder import write_model_info
    from albertkit.tasks.spec import TaskSpec

    folder = root / "cls"
    shutil.copytree(model_folders["cls"], folder)
    spec = TaskSpec("classification", labels=["negative", "positive"], header=True)
    write_model_info(folder, {"task": "classification", "task_spec": spec.to_dict()})
    lines = [f"{s}\t{'positive' if i % 2 else 'negative'}" for i, s in enumerate(movie_sentences(rows, seed=seed))]
    (root / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(lines) + "\n")
    return folder, root / "dev.tsv"
