"""The quickstart sample shipped in the package: sizes, document layout, balanced labels, clean UTF-8."""

from collections import Counter

import pytest

from albertkit.errors import UserError
from albertkit.samples import SAMPLE_FILES, SAMPLE_LANGS, sample_path

# (documents, paragraphs, train rows, dev rows) at least, per language.
EXPECTED = {"en": (50, 250, 350, 90), "zh": (35, 180, 280, 70)}


def documents(lang):
    text = sample_path(lang, "corpus.txt").read_text(encoding="utf-8")
    return [block.split("\n") for block in text.strip("\n").split("\n\n")]


def labeled_rows(lang, split):
    lines = sample_path(lang, f"sentiment_{split}.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "sentence\tlabel"
    assert lines[-1] == "", "the file ends with a newline"
    return [line.split("\t") for line in lines[1:-1]]


def test_every_sample_file_exists_is_utf8_and_the_whole_sample_is_small():
    total = 0
    for lang in SAMPLE_LANGS:
        for name in SAMPLE_FILES:
            data = sample_path(lang, name).read_bytes()
            data.decode("utf-8")  # raises on any invalid byte
            assert b"\r" not in data and b"\t\t" not in data
            total += len(data)
    assert 150_000 < total < 300_000


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
def test_corpus_has_documents_of_several_multi_sentence_paragraphs(lang):
    docs = documents(lang)
    min_docs, min_paragraphs, _, _ = EXPECTED[lang]
    paragraphs = [p for doc in docs for p in doc]
    assert len(docs) >= min_docs and len(paragraphs) >= min_paragraphs
    assert all(2 <= len(doc) <= 6 for doc in docs)
    assert all(p.strip() == p and p for p in paragraphs), "no blank or padded lines inside a document"
    end = "." if lang == "en" else "。"
    assert all(p.count(end) >= 3 for p in paragraphs), "every paragraph has several sentences"
    if lang == "zh":
        assert all(" " not in p for p in paragraphs)
    # Varied text, not one paragraph repeated.
    assert len(set(paragraphs)) > 0.9 * len(paragraphs)


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
def test_sentiment_files_are_balanced_clean_and_disjoint(lang):
    _, _, min_train, min_dev = EXPECTED[lang]
    train, dev = labeled_rows(lang, "train"), labeled_rows(lang, "dev")
    for rows, minimum in ((train, min_train), (dev, min_dev)):
        assert len(rows) >= minimum
        assert all(len(row) == 2 and row[0].strip() == row[0] and row[0] for row in rows)
        counts = Counter(label for _, label in rows)
        assert set(counts) == {"positive", "negative"} and counts["positive"] == counts["negative"]
    assert not {s for s, _ in train} & {s for s, _ in dev}, "no dev sentence is also in train"


@pytest.mark.parametrize(("lang", "negation"), [("en", " not "), ("zh", "不")])
def test_negation_appears_in_both_classes(lang, negation):
    """Sentiment is not readable off one keyword: negations occur in positive and negative sentences alike."""
    rows = labeled_rows(lang, "train")
    counts = Counter(label for sentence, label in rows if negation in sentence)
    assert counts["positive"] >= 30 and counts["negative"] >= 30


def test_sample_vocabulary_overlaps_the_corpus():
    corpus = set(sample_path("en", "corpus.txt").read_text(encoding="utf-8").lower().replace(".", " ").split())
    words = {w.strip(".,:").lower() for s, _ in labeled_rows("en", "train") for w in s.split()}
    assert len(words & corpus) / len(words) > 0.6


def test_unknown_sample_is_a_user_error():
    with pytest.raises(UserError, match="no sample in language 'fr'; choose en or zh"):
        sample_path("fr", "corpus.txt")
    with pytest.raises(UserError, match="no sample file 'wiki.txt'"):
        sample_path("en", "wiki.txt")
