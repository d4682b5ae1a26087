"""Corpus reading: documents from txt/jsonl/gz/folders/globs, the WikiText rules, and en/zh sentence splitting."""

import gzip
import json

import pytest
from conftest import SHARED_DATA

from albertkit.data.corpus import CorpusStats, is_chinese, read_documents, split_sentences
from albertkit.errors import UserError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith went to Washington. He arrived at 3 p.m. on Monday.",
         ["Mr. Smith went to Washington.", "He arrived at 3 p.m. on Monday."]),
        ("Dr. Jones paid $3.50 for it! Did he? Yes.", ["Dr. Jones paid $3.50 for it!", "Did he?", "Yes."]),
        ("The U.S. Army is large. It has many units.", ["The U.S. Army is large.", "It has many units."]),
        ("Use tools, e.g. Hammers and saws. They help.", ["Use tools, e.g. Hammers and saws.", "They help."]),
        ("J. R. R. Tolkien wrote it. In 1954 it appeared.", ["J. R. R. Tolkien wrote it.", "In 1954 it appeared."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("Pi is 3.14159 roughly. 2000 was a leap year.", ["Pi is 3.14159 roughly.", "2000 was a leap year."]),
        ("It is closely related to H. americanus . It grows large .",
         ["It is closely related to H. americanus .", "It grows large ."]),
        ("no capital after this. so one sentence", ["no capital after this. so one sentence"]),
    ],
)
def test_english_sentences(text, expected):
    assert split_sentences(text, "en") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天天气很好。我们去公园吧！你去吗？", ["今天天气很好。", "我们去公园吧！", "你去吗？"]),
        ("他说：“你好。”然后走了。", ["他说：“你好。”", "然后走了。"]),
        ("「明天呢？」她问道。", ["「明天呢？」", "她问道。"]),
        ("（见附录。）下一句；再一句……最后!真的?", ["（见附录。）", "下一句；", "再一句……", "最后!", "真的?"]),
        ("价格是3.5元。好的", ["价格是3.5元。", "好的"]),
        ("半角句号｡全角句号．结束", ["半角句号｡", "全角句号．", "结束"]),
    ],
)
def test_chinese_sentences(text, expected):
    assert split_sentences(text, "zh") == expected


def test_is_chinese_by_share_of_cjk():
    assert is_chinese("我喜欢Python编程")
    assert not is_chinese("The word 中 means middle in this long English sentence about characters.")
    assert not is_chinese("plain English")


def test_txt_blank_lines_split_documents_and_lines_are_counted(tmp_path):
    (tmp_path / "a.txt").write_text(
        "First doc, first paragraph. Second sentence.\nFirst doc, second paragraph.\n\n"
        "Second doc.\n\n\n***\nx\nThird doc.\n", encoding="utf-8"
    )
    stats = CorpusStats()
    docs = list(read_documents(tmp_path / "a.txt", stats=stats))
    assert [d.sentences for d in docs] == [
        ["First doc, first paragraph.", "Second sentence.", "First doc, second paragraph."],
        ["Second doc."],
        ["Third doc."],
    ]
    assert [d.line for d in docs] == [1, 4, 9]
    assert stats.skipped_by_reason() == {"no text": 1, "too short": 1}
    assert (stats.documents, stats.sentences) == (3, 5)


def test_wikitext_titles_split_and_headings_drop(tmp_path):
    text = (
        " \n = Lobster = \n \n Lobsters are big . They live in the sea .\n \n = = Life cycle = = \n \n"
        " Eggs hatch in summer .\n Larvae drift .\n \n = = = Predators = = = \n \n Fish eat them .\n"
        " \n = Crab = \n \n Crabs walk sideways .\n"
    )
    (tmp_path / "wiki.tokens").write_text(text, encoding="utf-8")
    stats = CorpusStats()
    docs = list(read_documents(tmp_path / "wiki.tokens", stats=stats))
    assert [d.sentences for d in docs] == [
        ["Lobsters are big .", "They live in the sea .", "Eggs hatch in summer .", "Larvae drift .", "Fish eat them ."],
        ["Crabs walk sideways ."],
    ]
    assert stats.skipped_by_reason() == {"wikitext heading": 2, "wikitext title": 2}


def test_jsonl_gz_folders_and_globs(tmp_path):
    records = [{"text": "One record. Two sentences."}, {"text": "Second record.\n\nStill the second record."}]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "more.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("Zipped doc.\n\nAnother zipped doc.\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.txt").write_text("In a folder.\n", encoding="utf-8")
    (sub / "skip.csv").write_text("Not text.\n", encoding="utf-8")

    jsonl = [d.sentences for d in read_documents(tmp_path / "docs.jsonl")]
    assert jsonl == [["One record.", "Two sentences."], ["Second record.", "Still the second record."]]
    assert [d.sentences for d in read_documents(tmp_path / "more.txt.gz")] == [["Zipped doc."], ["Another zipped doc."]]
    assert [d.sentences for d in read_documents(sub)] == [["In a folder."]]
    globbed = list(read_documents(str(tmp_path / "*.jsonl")))
    assert len(globbed) == 2 and globbed[0].path.name == "docs.jsonl"
    everything = list(read_documents(tmp_path))
    assert sorted(d.path.name for d in everything) == ["c.txt", "docs.jsonl", "docs.jsonl", "more.txt.gz", "more.txt.gz"]


def test_language_is_detected_per_document(tmp_path):
    (tmp_path / "mixed.txt").write_text("An English document. With two sentences.\n\n中文文档。有两句话。\n", encoding="utf-8")
    docs = list(read_documents(tmp_path / "mixed.txt"))
    assert [(d.lang, d.sentences) for d in docs] == [
        ("en", ["An English document.", "With two sentences."]),
        ("zh", ["中文文档。", "有两句话。"]),
    ]
    forced = list(read_documents(tmp_path / "mixed.txt", lang="en"))
    assert forced[1].sentences == ["中文文档。有两句话。"]


def test_missing_input_and_bad_lang_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        list(read_documents(tmp_path / "absent.txt"))
    with pytest.raises(UserError, match="unknown language 'fr'"):
        list(read_documents(tmp_path, lang="fr"))


def test_wikitext_103_articles():
    path = SHARED_DATA / "en" / "wiki" / "wiki.valid.tokens"
    if not path.is_file():
        pytest.skip("../shared/data is absent")
    stats = CorpusStats()
    docs = list(read_documents(path, stats=stats))
    # wiki.valid.tokens holds 60 articles; every title starts one and the 560 section headings are dropped.
    assert len(docs) == 60
    assert stats.skipped_by_reason() == {"wikitext heading": 560, "wikitext title": 60}
    assert docs[0].sentences[:2] == [
        "Homarus gammarus , known as the European lobster or common lobster , is a species of clawed lobster from "
        "the eastern Atlantic Ocean , Mediterranean Sea and parts of the Black Sea .",
        "It is closely related to the American lobster , H. americanus .",
    ]
    assert 7000 < stats.sentences < 8500
