"""Task readers on real data slices and on small broken files; featurization and NER / QA post-processing."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import sample_texts, write_bert_vocab

from albertkit.errors import UserError
from albertkit.io.tables import BadRows
from albertkit.tasks.base import get_task
from albertkit.tasks.files import repair_html
from albertkit.tasks.metrics import compute_metrics
from albertkit.tasks.ner import word_windows
from albertkit.tasks.spec import (
    NerExample,
    SkippedRowsWarning,
    TaskSpec,
    featurize,
    ner_entities,
    ner_word_tags,
    qa_best_spans,
    qa_predictions,
    read_examples,
    read_train_examples,
)
from albertkit.tasks.table import sorted_labels
from albertkit.tokenization.loading import load_tokenizer

ENGLISH = (
    "The film was released in 1966 and directed by Sergio Leone in Italy and Spain.\n"
    "It stars Clint Eastwood, and the music is by Ennio Morricone, who wrote many scores.\n"
    "John lives in New York and works for the United Nations as a translator.\n"
    "A charming and often affecting journey through the streets of an old city.\n"
)
CHINESE = (
    "高勇男中国国籍无境外居留权汉族中共党员本科学历工程师美国项目管理协会注册会员人和投资董事北京上海张三在\n"
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from albertkit.tokenization.training import train_tokenizer

    folder = tmp_path_factory.mktemp("tok")
    corpus = folder / "corpus.txt"
    # Shuffled words and characters make a corpus varied enough for a few hundred pieces.
    rng = np.random.default_rng(0)
    words, chars = ENGLISH.split(), list(CHINESE.strip())
    lines = [" ".join(rng.permutation(words)[:12]) for _ in range(300)]
    lines += ["".join(rng.permutation(chars)[:15]) for _ in range(300)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return train_tokenizer([corpus], folder / "tokenizer", vocab_size=250, lang="en")


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- real data ---------------------------------------------------------------------------------


def test_sst2_header_and_labels(shared_data):
    spec, train = read_train_examples(TaskSpec("classification"), shared_data / "en/sst2/train.tsv")
    assert spec.column_names == ["sentence", "label"] and spec.labels == ["0", "1"]
    assert len(train) == 60614
    assert (train[0].text, train[0].label, train[0].line) == ("when are bears bears and", "1", 2)
    test = read_examples(spec, shared_data / "en/sst2/test.tsv")
    assert len(test) == 872 and test[0].text == "it 's a charming and often affecting journey ."


def test_agnews_no_header_string_labels_html(shared_data):
    spec, train = read_train_examples(TaskSpec("classification"), shared_data / "en/agnews/train.tsv")
    assert spec.column_names is None and spec.labels == ["Business", "Sci/Tech", "Sports", "World"]
    assert train[0].line == 1 and train[0].text.startswith("p2pnet.net News")
    assert train[1].text.startswith("It's over. Our relationship just hasn't been working")
    assert len(read_examples(spec, shared_data / "en/agnews/test.tsv")) == 7600


def test_chnsenticorp_positive_negative(shared_data):
    spec, train = read_train_examples(TaskSpec("classification"), shared_data / "zh/chnsenticorp/train.tsv")
    # The README promises a text_a/label header, but the file starts with data: detection keeps row 1.
    assert spec.column_names is None and spec.labels == ["negative", "positive"] and len(train) == 9600
    assert len(read_examples(spec, shared_data / "zh/chnsenticorp/dev.tsv")) == 1200


def test_afqmc_pairs_with_bom(shared_data, tokenizer):
    spec, train = read_train_examples(TaskSpec("pair"), shared_data / "zh/afqmc/train.tsv")
    assert spec.text_pair_column == 1 and spec.labels == ["0", "1"] and len(train) == 34334
    assert (train[0].text, train[0].text_pair) == (
        "蚂蚁借呗等额还款可以换成先息后本吗",
        "借呗有先息到期还本吗",
    )
    dev = read_examples(spec, shared_data / "zh/afqmc/dev.tsv")
    assert len(dev) == 4316
    features = featurize(spec, tokenizer, dev[:50])
    for feature in features:
        segment_b = feature["token_type_ids"].index(1)
        assert feature["input_ids"][segment_b - 1] == tokenizer.sep_token_id == feature["input_ids"][-1]
        assert feature["labels"] in (0, 1)


def test_resume_ner_bmes(shared_data):
    spec, train = read_train_examples(TaskSpec("ner"), shared_data / "zh/ner_resume/train.char.bmes")
    assert len(train) == 3821 and spec.word_split == "char"
    assert spec.labels[:4] == ["O", "B-CONT", "M-CONT", "E-CONT"] and len(spec.labels) == 28
    first = train[0]
    assert first.text == "高勇：男，中国国籍，无境外居留权，"
    entities = ner_entities(first, first.tags)
    assert [(e.type, e.start, e.end, e.text) for e in entities] == [
        ("NAME", 0, 2, "高勇"),
        ("CONT", 5, 9, "中国国籍"),
    ]
    assert len(read_examples(spec, shared_data / "zh/ner_resume/dev.char.bmes")) == 463


# --- small files: formats and errors -------------------------------------------------------------


def test_unknown_dev_label_names_file_and_line(tmp_path):
    spec, _ = read_train_examples(
        TaskSpec("classification"), write(tmp_path / "train.tsv", "good\tpos\nbad\tneg\n")
    )
    dev = write(tmp_path / "dev.tsv", "fine\tpos\n\nawful\tmaybe\n")
    with pytest.raises(
        UserError, match=r"dev\.tsv:3: unknown label 'maybe'; the training labels are \['neg', 'pos'\]"
    ):
        read_examples(spec, dev)


def test_wrong_column_count_rows_stop_by_default_and_are_skipped_when_asked(tmp_path):
    path = write(tmp_path / "train.tsv", "a\t1\nb\t0\nc\textra\t1\nd\n\ne\t0\n")
    with pytest.raises(UserError, match=r"train\.tsv:3: 3 columns instead of 2 \(a tab inside a text\?\)$"):
        read_train_examples(TaskSpec("classification"), path)
    bad_rows = BadRows(skip=True)
    with pytest.warns(
        SkippedRowsWarning, match=r"skipped 2 rows: 1 with 3 columns instead of 2 \(lines 3\); 1 with 1 "
    ):
        spec, examples = read_train_examples(TaskSpec("classification"), path, bad_rows)
    assert [(ex.text, ex.label, ex.line) for ex in examples] == [("a", "1", 1), ("b", "0", 2), ("e", "0", 6)]
    assert bad_rows.count == 2 and bad_rows.summary() == " (skipped 2 bad rows)"


def test_empty_and_unknown_labels_are_bad_rows(tmp_path):
    spec, _ = read_train_examples(TaskSpec("classification"), write(tmp_path / "train.tsv", "good\tpos\nbad\tneg\n"))
    dev = write(tmp_path / "dev.tsv", "fine\tpos\nmeh\t \nawful\tmaybe\nok\tneg\n")
    with pytest.raises(UserError, match=r"dev\.tsv:2: empty label$"):
        read_examples(spec, dev)
    bad_rows = BadRows(skip=True)
    with pytest.warns(SkippedRowsWarning, match=r"skipped 2 rows: 1 with an empty label \(lines 2\); 1 with an "
                                                 r"unknown label \(lines 3\)"):
        examples = read_examples(spec, dev, bad_rows=bad_rows)
    assert [ex.line for ex in examples] == [1, 4]


def test_no_usable_rows_is_an_error(tmp_path):
    path = write(tmp_path / "train.tsv", "only text\nmore text\n")
    with pytest.raises(UserError, match=r"train\.tsv: no label column -1 \(1 columns\)"):
        read_train_examples(TaskSpec("classification"), path)


def test_bom_crlf_and_header_detection(tmp_path):
    path = write(tmp_path / "train.tsv", b"\xef\xbb\xbfsentence\tlabel\r\ngood movie\tpos\r\nbad\tneg\r\n")
    spec, examples = read_train_examples(TaskSpec("classification"), path)
    assert spec.column_names == ["sentence", "label"]
    assert [(ex.text, ex.label, ex.line) for ex in examples] == [("good movie", "pos", 2), ("bad", "neg", 3)]
    # the same header in a dev file is recognised; a declared header=False keeps row 1 as data
    dev = write(tmp_path / "dev.tsv", "sentence\tlabel\nok\tpos\n")
    assert [ex.text for ex in read_examples(spec, dev)] == ["ok"]
    no_header = TaskSpec("classification", header=False)
    _, rows = read_train_examples(no_header, write(tmp_path / "t2.tsv", "good\tpos\nbad\tneg\n"))
    assert [ex.label for ex in rows] == ["pos", "neg"]


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path / "bad.tsv", b"good\tpos\nbad\tneg\nbro\xe9ken\tpos\n")
    with pytest.raises(UserError, match=r"bad\.tsv:3: invalid UTF-8"):
        read_train_examples(TaskSpec("classification"), path)


def test_column_names_and_missing_label_column(tmp_path):
    path = write(tmp_path / "train.tsv", "id\treview\tstars\n1\tgreat\t5\n2\tpoor\t1\n")
    spec, examples = read_train_examples(
        TaskSpec("classification", text_column="review", label_column="stars"), path
    )
    assert spec.labels == ["1", "5"] and [ex.text for ex in examples] == ["great", "poor"]
    with pytest.raises(
        UserError, match=r"no label column 'sentiment' \(columns: \['id', 'review', 'stars'\]\)"
    ):
        read_train_examples(TaskSpec("classification", text_column="review", label_column="sentiment"), path)
    with pytest.raises(UserError, match="is a name but the file has no header row"):
        read_train_examples(TaskSpec("classification", label_column="stars", header=False), path)


def test_prediction_file_without_labels(tmp_path):
    spec, _ = read_train_examples(
        TaskSpec("classification"), write(tmp_path / "train.tsv", "good\tpos\nbad\tneg\n")
    )
    examples = read_examples(spec, write(tmp_path / "new.tsv", "so good\nnot bad\n"), require_labels=False)
    assert [(ex.text, ex.label) for ex in examples] == [("so good", None), ("not bad", None)]
    # a one-column file under a regression spec: its text is not mistaken for a header's label cell
    spec, _ = read_train_examples(TaskSpec("regression"), write(tmp_path / "r.tsv", "a\t1\nb\t2\n"))
    examples = read_examples(spec, write(tmp_path / "new_r.tsv", "great movie\nokay\n"), require_labels=False)
    assert [(ex.text, ex.label) for ex in examples] == [("great movie", None), ("okay", None)]


def test_regression_labels_must_be_numbers(tmp_path):
    spec, examples = read_train_examples(
        TaskSpec("regression"), write(tmp_path / "t.tsv", "s\tscore\na\t0.5\nb\t4\n")
    )
    assert spec.labels == [] and spec.num_labels == 1 and [ex.label for ex in examples] == ["0.5", "4"]
    with pytest.raises(UserError, match=r"d\.tsv:3: regression label 'high' is not a number"):
        read_examples(spec, write(tmp_path / "d.tsv", "a\t1.5\nc\t2\nb\thigh\n"))


def test_label_order_is_numeric_when_labels_are_numbers():
    assert sorted_labels(["10", "2", "1", "-1"]) == ["-1", "1", "2", "10"]
    assert sorted_labels(["b", "a", "10", "2"]) == ["10", "2", "a", "b"]


def test_csv_quotes_long_lines_and_jsonl(tmp_path):
    long_text = "word " * 40_000  # 200,000 characters: past csv's default field limit
    csv_path = write(
        tmp_path / "t.csv", f'text,label\n"hello, ""world""\nsecond line",1\n"{long_text}",0\nplain,1\n'
    )
    spec, examples = read_train_examples(TaskSpec("classification"), csv_path)
    assert examples[0].text == 'hello, "world"\nsecond line' and examples[0].line == 2
    assert len(examples[1].text) == len(long_text.strip()) and examples[1].line == 4
    assert examples[2].line == 5
    # TSV keeps stray quotes as text
    _, rows = read_train_examples(
        TaskSpec("classification"), write(tmp_path / "q.tsv", 'he said "hi\t1\n"x\t0\n')
    )
    assert [ex.text for ex in rows] == ['he said "hi', '"x']
    jsonl = write(tmp_path / "t.jsonl", '{"q": "a?", "r": "b", "y": 1}\n\n{"q": "c?", "r": "d", "y": 0}\n')
    spec, examples = read_train_examples(
        TaskSpec("pair", text_column="q", text_pair_column="r", label_column="y"), jsonl
    )
    assert spec.labels == ["0", "1"] and [(ex.text_pair, ex.label, ex.line) for ex in examples] == [
        ("b", "1", 1),
        ("d", "0", 3),
    ]


def test_html_repair():
    assert repair_html("It #39;s AT&amp;T, up  #36;10 &lt;b&gt;") == "It's AT&T, up $10 <b>"
    assert repair_html("ticket #12; row 5") == "ticket #12; row 5"  # a control character is no entity
    assert repair_html("&#183; stays") == "· stays"


def test_task_spec_round_trip(tmp_path):
    spec = TaskSpec("ner", labels=["O", "B-PER"], word_split="char")
    spec.save(tmp_path / "task.json")
    assert TaskSpec.load(tmp_path / "task.json") == spec
    assert spec.id2label == {0: "O", 1: "B-PER"} and TaskSpec("qa").max_seq_length == 384
    with pytest.raises(UserError, match=r"unknown task settings \['lables'\]"):
        TaskSpec.from_dict({"task": "classification", "lables": []})
    with pytest.raises(UserError, match="unknown task 'tagging'"):
        TaskSpec("tagging")
    with pytest.raises(UserError, match="max_seq_length 64 leaves too little room for context"):
        TaskSpec("qa", max_seq_length=64, max_query_length=64)


def test_ner_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "x.bmes", "高 勇\tB-NAME E-NAME\n中 国 人\tB-LOC E-LOC\n")
    with pytest.raises(UserError, match=r"x\.bmes:2: 2 tags for 3 tokens"):
        read_train_examples(TaskSpec("ner"), path)
    conll = write(
        tmp_path / "train.conll", "-DOCSTART- O\n\nJohn\tNNP\tB-PER\nruns\tVBZ\tO\n\nParis\tNNP\tB-LOC\n"
    )
    spec, examples = read_train_examples(TaskSpec("ner"), conll)
    assert [(ex.words, ex.tags, ex.line) for ex in examples] == [
        (["John", "runs"], ["B-PER", "O"], 3),
        (["Paris"], ["B-LOC"], 6),
    ]
    assert spec.labels == ["O", "B-LOC", "B-PER"] and spec.word_split == "whitespace"
    dev = write(tmp_path / "dev.conll", "Rome B-LOC\nis O\nbig B-SIZE\n")
    with pytest.raises(UserError, match=r"dev\.conll:3: tag 'B-SIZE' is unknown"):
        read_examples(spec, dev)
    with pytest.raises(UserError, match=r"bad\.conll:2: tag 'B_PER' is not O or B-/I-/M-/E-/S-TYPE"):
        read_train_examples(TaskSpec("ner"), write(tmp_path / "bad.conll", "a\tO\nb\tB_PER\n"))


# --- featurization -------------------------------------------------------------------------------


def test_text_features_match_the_tokenizer(tmp_path, tokenizer):
    path = write(
        tmp_path / "t.tsv", "the film was released\tit stars clint eastwood and the music\t1\nno\tyes\t0\n"
    )
    spec, examples = read_train_examples(TaskSpec("pair", max_seq_length=12), path)
    features = featurize(spec, tokenizer, examples)
    for example, feature in zip(examples, features, strict=True):
        expected = tokenizer(example.text, example.text_pair, truncation=True, max_length=12)
        assert feature["input_ids"] == expected["input_ids"]
        assert feature["token_type_ids"] == expected["token_type_ids"]
    assert len(features[0]["input_ids"]) == 12 and [f["labels"] for f in features] == [1, 0]
    spec, examples = read_train_examples(TaskSpec("regression"), write(tmp_path / "r.tsv", "a\t0.25\nb\t3\n"))
    assert [f["labels"] for f in featurize(spec, tokenizer, examples)] == [0.25, 3.0]


def test_ner_features_label_first_piece_and_decode(tmp_path, tokenizer):
    sentence = "John lives in New York and works for the United Nations".split()
    tags = ["B-PER", "O", "O", "B-LOC", "I-LOC", "O", "O", "O", "O", "B-ORG", "I-ORG"]
    conll = (
        "".join(f"{w}\t{t}\n" for w, t in zip(sentence, tags, strict=True))
        + "\nEnnio\tB-PER\nMorricone\tI-PER\n"
    )
    spec, examples = read_train_examples(TaskSpec("ner"), write(tmp_path / "t.conll", conll))
    features = featurize(spec, tokenizer, examples)
    feature = features[0]
    labels = np.array(feature["labels"])
    assert labels[0] == labels[-1] == -100
    assert labels[feature["word_positions"]].tolist() == [spec.label2id[t] for t in examples[0].tags]
    assert (labels != -100).sum() == 11 and len(feature["word_ids"]) == len(feature["input_ids"])
    pieces = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert all(pieces[p] != "▁" for p in feature["word_positions"])  # tags never sit on a bare "▁"
    # logits that pick the gold label at every position give the gold tags and entities back
    logits = [np.eye(len(spec.labels))[np.maximum(f["labels"], 0)] for f in features]
    tags = ner_word_tags(spec, features, logits)
    assert tags == [ex.tags for ex in examples]
    entities = [(e.type, e.start, e.end, e.text) for e in ner_entities(examples[0], tags[0])]
    assert entities == [("PER", 0, 4, "John"), ("LOC", 14, 22, "New York"), ("ORG", 41, 55, "United Nations")]
    # a sentence longer than max_seq_length becomes overlapping windows of whole words
    short = TaskSpec("ner", labels=spec.labels, max_seq_length=8)
    windows = [f for f in featurize(short, tokenizer, examples) if f["example_index"] == 0]
    assert len(windows) > 2 and all(len(w["input_ids"]) <= 8 and w["num_words"] == 11 for w in windows)
    word_tokens = np.array(feature["word_ids"])
    for window in windows:
        first, kept = window["first_word"], len(window["word_positions"])
        in_window = (word_tokens >= first) & (word_tokens < first + kept)
        assert window["input_ids"][1:-1] == np.array(feature["input_ids"])[in_window].tolist()  # whole words, in order
    spans = [(w["first_word"], w["first_word"] + len(w["word_positions"])) for w in windows]
    assert spans[0][0] == 0 and spans[-1][1] == 11
    assert all(b[0] < a[1] and b[0] > a[0] for a, b in zip(spans, spans[1:], strict=False))  # overlapping, advancing
    logits = [np.eye(len(spec.labels))[np.maximum(f["labels"], 0)] for f in featurize(short, tokenizer, examples)]
    assert ner_word_tags(short, featurize(short, tokenizer, examples), logits) == [ex.tags for ex in examples]


def test_ner_windows_prefer_the_most_central_and_skip_overlong_words():
    # five one-token words in windows of 3 tokens: the second window starts at the first one's middle
    starts, ends = np.arange(5), np.arange(1, 6)
    assert word_windows(starts, ends, 3) == [(0, 3), (2, 5)]
    assert word_windows(starts, ends, 5) == [(0, 5)] and word_windows(starts[:0], ends[:0], 5) == [(0, 0)]
    # a word of 4 tokens cannot fit a window of 3: it is left out, its neighbours are not
    assert word_windows(np.array([0, 1, 5]), np.array([1, 5, 6]), 3) == [(0, 1), (2, 3)]
    spec = TaskSpec("ner", labels=["O", "B-X", "I-X"])
    features = [{"example_index": 0, "first_word": first, "num_words": 5, "word_positions": [1, 2, 3]}
                for first in (0, 1, 2)]
    # each window predicts its own label id everywhere: 0 → O, 1 → B-X, 2 → I-X
    logits = [np.eye(3)[np.full(5, k)] for k in range(3)]
    # words 0 and 1: window 0 (word 1 is its centre); word 2: centre of window 1; words 3 and 4: window 2
    assert ner_word_tags(spec, features, logits) == [["O", "O", "B-X", "I-X", "I-X"]]
    assert ner_word_tags(spec, features[:1], logits[:1]) == [["O"] * 5]  # words in no window get O


def test_ner_raw_text_offsets():
    example = NerExample.from_text("张三 在北京", "char")
    assert example.words == ["张", "三", "在", "北", "京"] and example.offsets[2] == (3, 4)
    entities = ner_entities(example, ["B-PER", "E-PER", "O", "B-LOC", "E-LOC"])
    assert [(e.text, e.start, e.end) for e in entities] == [("张三", 0, 2), ("北京", 4, 6)]


# --- QA ------------------------------------------------------------------------------------------

CONTEXT = (
    "The film (released in 1966) was directed by Sergio Leone. " * 3
    + "It stars Clint Eastwood, and the music is by Ennio Morricone."
)


def squad_file(tmp_path: Path, with_lost_answer: bool = True) -> Path:
    qas = [
        {
            "id": "q1",
            "question": "Who wrote the music?",
            "answers": [{"text": "Ennio Morricone", "answer_start": CONTEXT.index("Ennio")}],
        },
        {
            "id": "q2",
            "question": "When was it released?",
            "answers": [{"text": "1966", "answer_start": CONTEXT.index("1966") + 3}],
        },  # misplaced start
        {"id": "q3", "question": "Who produced it?", "answers": [], "is_impossible": True},
        {"id": "q4", "question": "Who?", "answers": [{"text": "Tarantino", "answer_start": 0}]},
    ]
    qas = qas if with_lost_answer else qas[:3]
    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}
    return write(tmp_path / "squad.json", json.dumps(data, indent=1))


def oracle_logits(features):
    starts, ends = [], []
    for feature in features:
        start, end = np.full(len(feature["input_ids"]), -5.0), np.full(len(feature["input_ids"]), -5.0)
        start[feature["start_positions"]] = end[feature["end_positions"]] = 5.0
        starts.append(start)
        ends.append(end)
    return starts, ends


def test_squad_windows_positions_and_predictions(tmp_path, tokenizer):
    qa_spec = TaskSpec("qa", max_seq_length=32, max_query_length=8, doc_stride=8)
    with pytest.raises(UserError, match=r"squad\.json:\d+: question 'q4': no answer text found in the context$"):
        read_train_examples(qa_spec, squad_file(tmp_path))
    with pytest.warns(
        SkippedRowsWarning,
        match=r"skipped 1 questions: 1 with no answer text found in the context \(lines \d+\)",
    ):
        spec, examples = read_train_examples(qa_spec, squad_file(tmp_path), BadRows(skip=True))
    assert spec.version_2 and [ex.id for ex in examples] == ["q1", "q2", "q3"]
    assert examples[1].answers == [("1966", CONTEXT.index("1966"))]
    features = featurize(spec, tokenizer, examples)
    assert all(len(f["input_ids"]) <= 32 for f in features) and len({f["example_id"] for f in features}) == 3
    assert all(sum(f["example_id"] == qid for f in features) > 1 for qid in ("q1", "q2", "q3"))
    answered = [f for f in features if f["start_positions"] > 0]
    assert {f["example_id"] for f in answered} == {"q1", "q2"}
    for feature in answered:
        offset = feature["context_offset"]
        start = feature["char_starts"][feature["start_positions"] - offset]
        end = feature["char_ends"][feature["end_positions"] - offset]
        assert CONTEXT[start:end] == {"q1": "Ennio Morricone", "q2": "1966"}[feature["example_id"]]
    spans = qa_best_spans(features, *oracle_logits(features), version_2=True)
    assert (spans["q2"].text, spans["q2"].start, spans["q2"].end) == (
        "1966",
        CONTEXT.index("1966"),
        CONTEXT.index("1966") + 4,
    )
    predictions = qa_predictions(features, *oracle_logits(features), version_2=True)
    assert predictions == {"q1": "Ennio Morricone", "q2": "1966", "q3": ""}
    references = {ex.id: ex.answer_texts for ex in examples}
    assert compute_metrics("qa", predictions, references) == {"exact_match": 1.0, "f1": 1.0}
    # without v2 the best span wins even where [CLS] scores higher
    assert qa_predictions(features, *oracle_logits(features))["q3"] != ""


# A Chinese paragraph is one whitespace "word": rare characters (unknown pieces) and characters that normalize
# to several ("ﬁ", "½") used to make every piece of it span the whole paragraph.
ZH_CONTEXT = "鱻鱼是一种少见的字，龘也是。价格½元，ﬁ字连写。张三在北京工作，李四在上海读书。"


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
def test_squad_answers_in_a_chinese_paragraph_with_rare_characters(tmp_path, tokenizer, kind):
    if kind == "wordpiece":
        write_bert_vocab(sample_texts("zh"), tmp_path / "wordpiece")
        tokenizer = load_tokenizer(tmp_path / "wordpiece")
    answers = {"q1": "北京", "q2": "上海读书", "q3": "龘"}
    qas = [{"id": qid, "question": "在哪里？", "answers": [{"text": text, "answer_start": ZH_CONTEXT.index(text)}]}
           for qid, text in answers.items()]
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": ZH_CONTEXT, "qas": qas}]}]}
    spec, examples = read_train_examples(TaskSpec("qa", max_seq_length=64, max_query_length=8, doc_stride=16),
                                         write(tmp_path / "zh.json", json.dumps(data, ensure_ascii=False)))
    features = featurize(spec, tokenizer, examples)
    assert tokenizer.unk_token_id in features[0]["input_ids"]
    spans = list(zip(features[0]["char_starts"], features[0]["char_ends"], strict=True))
    # No piece spans the paragraph (sentencepiece gives a run of unknown characters one <unk>).
    assert max(end - start for start, end in spans) < len(ZH_CONTEXT) // 3
    # The answer comes back as the pieces it overlaps: exactly the answer when pieces are single characters
    # (WordPiece here); with sentencepiece a piece or a run of unknown characters may reach past it.
    (starts, ends), = {(tuple(f["char_starts"]), tuple(f["char_ends"])) for f in features if f["max_context"].all()}
    covering = {qid: ZH_CONTEXT[min(a for a, b in zip(starts, ends, strict=True) if b > ZH_CONTEXT.index(text)):
                                max(b for a, b in zip(starts, ends, strict=True) if a < ZH_CONTEXT.index(text) + len(text))]
                for qid, text in answers.items()}
    assert qa_predictions(features, *oracle_logits(features)) == covering
    assert all(text in covering[qid] for qid, text in answers.items())
    if kind == "wordpiece":
        assert covering == answers


def test_squad_max_context_covers_each_token_once(tmp_path, tokenizer):
    spec, examples = read_train_examples(
        TaskSpec("qa", max_seq_length=32, max_query_length=8, doc_stride=8),
        squad_file(tmp_path, with_lost_answer=False),
    )
    windows = [f for f in featurize(spec, tokenizer, examples[:1])]
    whole = featurize(dataclasses.replace(spec, max_seq_length=512), tokenizer, examples[:1])
    assert len(windows) > 3 and len(whole) == 1
    assert sum(int(f["max_context"].sum()) for f in windows) == len(whole[0]["char_starts"])
    # windows overlap (stride 8 < window), yet their max-context tokens tile the context in order
    tiled = np.concatenate([f["char_starts"][f["max_context"]] for f in windows])
    assert np.array_equal(tiled, whole[0]["char_starts"])


def test_squad_structure_errors(tmp_path):
    with pytest.raises(UserError, match=r"s\.json:3: invalid JSON"):
        read_train_examples(
            TaskSpec("qa"), write(tmp_path / "s.json", '{"data": [\n\n  {"paragraphs": [}\n]}')
        )
    bad = {"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "a", "answers": []}]}]}]}
    with pytest.raises(
        UserError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question should be a JSON str"
    ):
        read_train_examples(TaskSpec("qa"), write(tmp_path / "b.json", json.dumps(bad)))


def test_no_warning_on_clean_files(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_train_examples(TaskSpec("classification"), write(tmp_path / "t.tsv", "a\tx\n\nb\ty\n"))


def test_multi_label_files_labels_and_features(tmp_path, tokenizer):
    train = write(tmp_path / "train.tsv", "text\tlabels\ngood music\tmusic\ngreat cast , fine score\tacting,music\n"
                                          "dull plot\tplot\n")
    spec, examples = read_train_examples(TaskSpec("multi_label"), train)
    assert spec.labels == ["acting", "music", "plot"] and spec.num_labels == 3
    assert [f["labels"] for f in featurize(spec, tokenizer, examples)] == [[0, 1, 0], [1, 1, 0], [0, 0, 1]]
    dev = write(tmp_path / "dev.tsv", "text\tlabels\nok\tmusic, plot\nbad\tmusic,drums\n")
    with pytest.raises(UserError, match=r"dev\.tsv:3: unknown label 'drums'; the training labels are"):
        read_examples(spec, dev)
    task = get_task("multi_label")
    predictions = np.array([[False, True, True], [False, True, False]])
    with pytest.warns(SkippedRowsWarning, match="1 with an unknown label"):
        gold = task.references(spec, read_examples(spec, dev, bad_rows=BadRows(skip=True)) * 2)
    assert task.scores(predictions, gold) == {"micro_f1": pytest.approx(2 * 3 / (3 + 4)), "exact_match": 0.5}
