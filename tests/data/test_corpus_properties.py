"""Property test (hypothesis): sentence splitting loses and reorders nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from albertkit.data.corpus import split_sentences

SETTINGS = settings(max_examples=80, deadline=None)


SENTENCE_PARTS = st.sampled_from([
    "The", "film", "was", "good", ".", "!", "?", "...", "…", "Mr.", "U.S.", "J.", "e.g.", "3.5", "\"", "'", ")",
    "(", "”", "“", " ", "  ", "\t", "\n", "。", "！", "？", "；", "」", "』", "他", "说", "好", "电影", "A", "9",
])
PARAGRAPH = st.one_of(
    st.lists(SENTENCE_PARTS, max_size=30).map(lambda parts: "".join(
        part if part in ".!?…。！？；\"')”」』" else " " + part for part in parts)),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
)


def non_space(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


@SETTINGS
@given(paragraph=PARAGRAPH, lang=st.sampled_from(["en", "zh"]))
def test_sentence_splitting_loses_nothing(paragraph: str, lang: str) -> None:
    sentences = split_sentences(paragraph, lang)
    assert non_space("".join(sentences)) == non_space(paragraph)
    assert all(s and s == s.strip() for s in sentences)
    # In order and in place: each sentence is found after the previous one.
    position = 0
    for sentence in sentences:
        position = paragraph.index(sentence, position) + len(sentence)
