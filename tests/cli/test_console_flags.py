"""--quiet, --log-level and --progress: on every command, and what each one shows."""

import logging

import pytest

from albertkit import cli
from albertkit.runtime import console


def test_every_command_has_the_console_flags():
    commands = cli._commands(cli.build_parser())
    assert len(commands) >= 15  # quickstart ... pretrain run, each leaf of the tree
    for command in commands:
        options = {option for action in command._actions for option in action.option_strings}
        assert {"--quiet", "--log-level", "--progress", "--no-progress"} <= options, command.prog


def test_quiet_drops_status_lines_but_keeps_results(model_folders, tmp_path, capsys):
    corpus = model_folders["corpus"]
    argv = ["embed", "--model", str(model_folders["cls"]), "--input", str(corpus), "--output"]
    assert cli.main([*argv, str(tmp_path / "a.npy")]) == 0
    assert "embedded 400 texts" in capsys.readouterr().out
    assert cli.main([*argv, str(tmp_path / "b.npy"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "b.npy").stat().st_size == (tmp_path / "a.npy").stat().st_size
    assert cli.main(["model", "info", str(model_folders["cls"]), "--json", "-q"]) == 0
    assert '"num_hidden_layers": 2' in capsys.readouterr().out  # a result, not a status line


def test_log_level_filters_albertkit_messages(capsys):
    console.configure("warning")
    try:
        logging.getLogger("albertkit.train.loop").info("an info line")
        logging.getLogger("albertkit.train.loop").warning("a warning line")
        console.say("a status line")
    finally:
        console.reset()
    captured = capsys.readouterr()
    assert captured.err == "albertkit: warning: a warning line\n"
    assert captured.out == ""  # status lines are info messages
    console.configure("info")
    try:
        console.say("a status line")
    finally:
        console.reset()
    assert capsys.readouterr().out == "a status line\n"
    console.configure("error")
    try:
        console.say("hidden")
        logging.getLogger("albertkit").warning("hidden too")
    finally:
        console.reset()
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("flags", "tty", "shown"), [
    ({}, False, False), ({}, True, True), ({"progress": True}, False, True), ({"quiet": True}, True, False),
    ({"quiet": True, "progress": True}, False, True), ({"progress": False}, True, False),
])
def test_progress_bars_follow_the_terminal_unless_asked(monkeypatch, flags, tty, shown):
    monkeypatch.setattr("sys.stdout.isatty", lambda: tty, raising=False)
    console.configure(None, **flags)
    try:
        assert console.progress_enabled() is shown
        assert console.progress_bar(range(3)).disable is (not shown)
    finally:
        console.reset()


def test_a_bad_log_level_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["report", "x", "--log-level", "loud"])
    assert stop.value.code == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err
