"""Documents and sentences from raw text: .txt/.jsonl/.gz files, folders and globs; English and Chinese rules.

Plain text holds one paragraph per line and a blank line between documents; WikiText's ` = Title = ` lines
start a new document and its ` = = Section = = ` headings are dropped (with the blank lines around them, which
therefore do not split). A .jsonl record is one document; its "text" may hold several paragraphs.
Everything streams: one document at a time is in memory.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from albertkit.errors import UserError
from albertkit.io.text import is_record_file, iter_text_lines

LANGS = ("auto", "en", "zh")
# A document counts as Chinese when this share of its letters, digits and CJK characters is CJK.
CHINESE_SHARE = 0.2
# Documents longer than this are cut at a paragraph boundary, so one huge document never fills the memory.
MAX_DOCUMENT_CHARS = 1_000_000

_CJK_CHARS = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
    "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f"
)
_CJK = re.compile(f"[{_CJK_CHARS}]")
_WORD_CHAR = re.compile(r"\w")
_TITLE = re.compile(r"^ ?= (?!=)(.*[^=\s].*) = ?$")
_HEADING = re.compile(r"^ ?(=\s*){2,}.*?(\s*=){2,} ?$")

# English: [.!?] (with closing quotes/brackets) + whitespace + something that can open a sentence.
_EN_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]*[A-Z0-9])")
_EN_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt vs etc fig figs vol vols eds inc ltd corp dept univ gen col lt sgt capt "
    "cmdr adm gov sen rep rev hon pres approx ca cf al jan feb apr jun jul aug sep sept oct nov dec".split()
)
# Chinese: sentence-final marks, full- and half-width, with closing quotes and brackets kept on the sentence.
# ASCII quotes are ambiguous (open or close): attached only when whitespace or the end follows.
_ZH_BOUNDARY = re.compile(r"(?:[。．｡！!？?；;]+|…+|\.{3,})[”’」』）)》】〉｣]*(?:[\"'](?=\s|$))?")


@dataclass
class RawDocument:
    """One document as read: its paragraphs (lines) in order and where it starts."""

    path: Path
    line: int
    paragraphs: list[str]


@dataclass
class Document:
    """One document: its sentences in order, where it starts, and its language ("en" or "zh")."""

    path: Path
    line: int
    sentences: list[str]
    lang: str


@dataclass
class CorpusStats:
    """What reading found: documents, and per file the lines skipped or dropped, by reason."""

    documents: int = 0
    sentences: int = 0
    skipped: dict[str, Counter] = field(default_factory=dict)

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.setdefault(str(path), Counter())[reason] += 1

    def skipped_by_reason(self) -> dict[str, int]:
        """Skipped lines summed over all files."""
        total: Counter = Counter()
        for counts in self.skipped.values():
            total.update(counts)
        return dict(sorted(total.items()))


def is_chinese(text: str) -> bool:
    """True when CJK characters make up at least `CHINESE_SHARE` of the letters, digits and CJK characters."""
    cjk = len(_CJK.findall(text))
    return cjk > 0 and cjk >= CHINESE_SHARE * len(_WORD_CHAR.findall(text))


def split_sentences(paragraph: str, lang: str) -> list[str]:
    """Split one paragraph into sentences with English ("en") or Chinese ("zh") rules; whitespace trimmed."""
    if lang == "zh":
        ends = [m.end() for m in _ZH_BOUNDARY.finditer(paragraph)]
    else:
        ends = [m.end() for m in _EN_BOUNDARY.finditer(paragraph) if not _is_abbreviation(paragraph, m.start())]
    sentences, start = [], 0
    for end in [*ends, len(paragraph)]:
        sentence = paragraph[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    return sentences


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the period at `dot` closes an abbreviation (Mr., e.g., U.S.) or an initial (J.) instead of a sentence."""
    if text[dot] != ".":
        return False
    word_start = dot
    while word_start > 0 and not text[word_start - 1].isspace() and text[word_start - 1] not in "(\"'“‘[":
        word_start -= 1
    word = text[word_start:dot]
    # Single letters are initials ("J. R. R. Tolkien"), inner periods mark dotted abbreviations ("U.S", "e.g").
    return (len(word) == 1 and word.isalpha()) or ("." in word and word.replace(".", "").isalpha()) or (
        word.lower() in _EN_ABBREVIATIONS
    )


def split_document(raw: RawDocument, lang: str = "auto") -> Document:
    """Detect the language of a document (with lang="auto") and split its paragraphs into sentences."""
    doc_lang = lang if lang != "auto" else ("zh" if is_chinese("".join(raw.paragraphs)) else "en")
    return Document(raw.path, raw.line, [s for p in raw.paragraphs for s in split_sentences(p, doc_lang)], doc_lang)


def read_documents(
    inputs: str | Path | Iterable[str | Path], lang: str = "auto", stats: CorpusStats | None = None
) -> Iterator[Document]:
    """Stream the documents of text files, folders and globs, split into sentences; `stats` collects counts."""
    check_lang(lang)
    stats = stats if stats is not None else CorpusStats()
    for raw in read_raw_documents(inputs, stats):
        document = split_document(raw, lang)
        stats.documents += 1
        stats.sentences += len(document.sentences)
        yield document


def check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise UserError(f"unknown language {lang!r}; choose one of {', '.join(LANGS)}")


def read_raw_documents(inputs: str | Path | Iterable[str | Path], stats: CorpusStats,
                       split: str | None = None) -> Iterator[RawDocument]:
    """Documents as paragraphs, by the blank-line, WikiText-title and JSONL rules (a JSONL record or a table row is
    one document, its lines paragraphs); skipped lines go to `stats`."""
    paragraphs: list[str] = []
    doc_path, doc_line, size = Path(), 0, 0
    current_file: Path | None = None
    break_pending = after_heading = False
    for path, line_number, raw in iter_text_lines(inputs, split):
        is_jsonl = is_record_file(path)
        new_file = path != current_file
        current_file = path
        if new_file or is_jsonl or size > MAX_DOCUMENT_CHARS:
            if paragraphs:
                yield RawDocument(doc_path, doc_line, paragraphs)
            paragraphs, size, break_pending, after_heading = [], 0, False, False
        for text in raw.split("\n") if is_jsonl else [raw]:
            stripped = text.strip()
            if not stripped:
                # WikiText puts blank lines around headings: only other blank lines end a document.
                break_pending = break_pending or (bool(paragraphs) and not after_heading and not is_jsonl)
                continue
            if _TITLE.match(text):
                stats.skip(path, "wikitext title")
                if paragraphs:
                    yield RawDocument(doc_path, doc_line, paragraphs)
                paragraphs, size, break_pending, after_heading = [], 0, False, True
                continue
            if _HEADING.match(text):
                stats.skip(path, "wikitext heading")
                break_pending, after_heading = False, True
                continue
            after_heading = False
            if not _WORD_CHAR.search(stripped):
                stats.skip(path, "no text")
                continue
            if len(stripped) < 2:
                stats.skip(path, "too short")
                continue
            if break_pending and paragraphs:
                yield RawDocument(doc_path, doc_line, paragraphs)
                paragraphs, size = [], 0
            break_pending = False
            if not paragraphs:
                doc_path, doc_line = path, line_number
            paragraphs.append(stripped)
            size += len(stripped)
    if paragraphs:
        yield RawDocument(doc_path, doc_line, paragraphs)
