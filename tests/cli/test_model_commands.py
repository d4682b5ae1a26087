"""`albertkit model init` and `albertkit model info`, and the one-line errors of the CLI."""

import json

import pytest
import transformers

from albertkit.cli import main


@pytest.fixture(scope="module")
def tiny_model(prepared_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "tiny"
    assert main(["model", "init", "--preset", "tiny", "--tokenizer", str(prepared_corpus / "tok"), "--out", str(out)]) == 0
    return out


def test_init_writes_a_folder_transformers_loads(tiny_model):
    model = transformers.AlbertForPreTraining.from_pretrained(tiny_model)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (256, 4, 70)
    assert transformers.AlbertTokenizer.from_pretrained(tiny_model).vocab_size == 70
    assert json.loads((tiny_model / "albertkit.json").read_text())["preset"] == "tiny"


def test_info_counts_equal_transformers(tiny_model, capsys):
    assert main(["model", "info", str(tiny_model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    counts = info["parameters"]
    theirs = transformers.AlbertForPreTraining.from_pretrained(tiny_model)
    assert counts["total"] == theirs.num_parameters()
    assert counts["embeddings"] == 70 * 128 + 512 * 128 + 2 * 128 + 2 * 128
    assert counts["encoder"] == transformers.AlbertModel(theirs.config, add_pooling_layer=False).num_parameters() - counts["embeddings"]
    assert counts["pooler"] == 256 * 256 + 256
    assert info["architecture"] == "AlbertForPreTraining"


def test_info_text(tiny_model, capsys):
    assert main(["model", "info", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "AlbertForPreTraining" in out and "hidden_size=256" in out and "encoder" in out
    assert "  tokenizer: SentencePiece (spiece.model), 70 pieces, lowercased\n" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["model", "init", "--preset", "huge", "--tokenizer", "{tok}", "--out", "{tmp}/m"], "unknown preset 'huge'"),
        (["model", "init", "--preset", "tiny", "--tokenizer", "{tmp}/nothing", "--out", "{tmp}/m"], "nothing"),
        (["model", "info", "{tmp}"], "no config.json"),
        (["tokenizer", "train", "--input", "{tmp}/missing.txt", "--out", "{tmp}/t"], "missing.txt"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, message, prepared_corpus, tmp_path, capsys):
    argv = [a.format(tok=prepared_corpus / "tok", tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("albertkit: error:") and err.count("\n") == 1 and message in err
