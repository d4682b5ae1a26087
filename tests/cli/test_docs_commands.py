"""The docs name only commands and flags that exist: every `albertkit ...` command line of the READMEs, docs/*.md
and the comments of configs/**/*.yaml parses with the real argument parser."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from albertkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "README.zh-CN.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
# Where a command starts: the installed command (a path before it is fine), or the module under torchrun.
START = re.compile(r"^(?:\S*/)?albertkit\s+|\s-m albertkit\.cli\s+")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*([./][A-Za-z0-9_.]*)?$")  # DIR, FILE, N, OUT.npy, RUN_DIR
# Flags of other programs that the docs show beside albertkit's (torchrun, tensorboard).
OTHER_PROGRAMS_FLAGS = {"--nproc_per_node", "--nnodes", "--rdzv_backend", "--rdzv_endpoint", "--master_port",
                        "--logdir"}


def doc_texts() -> list[tuple[Path, str]]:
    """Markdown as it is; a YAML config as one code block of its comment lines (without the `#`)."""
    texts = [(path, path.read_text(encoding="utf-8")) for path in DOCS]
    for path in CONFIGS:
        comments = [line.split("#", 1)[1] for line in path.read_text(encoding="utf-8").splitlines() if "#" in line]
        texts.append((path, "```\n" + "\n".join(comments) + "\n```\n"))
    return texts


def command_lines(text: str) -> list[tuple[str, bool]]:
    """(arguments, complete) of each `albertkit ...` command of a text: the lines of code blocks, continuation
    lines joined (complete: they are meant to run), and inline code spans (references: they may leave out
    required flags). Markdown's escaped pipes are undone; diagram lines (with arrows) are no commands."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    candidates = [(line, True) for block in blocks for line in re.sub(r"\\\n\s*", " ", block).splitlines()]
    candidates += [(span, False) for span in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
    commands = set()
    for line, complete in candidates:
        line = line.strip().removeprefix("# ")  # a command shown commented out is still a command
        line = re.split(r"\s#", line)[0]  # a shell comment after it is not
        match = START.search(line)
        if match and "→" not in line:
            commands.add((line[match.end():].replace("\\|", "|"), complete))
    return sorted(commands)


def all_commands() -> list[tuple[str, str, bool]]:
    return [(path.relative_to(ROOT).as_posix(), command, complete) for path, text in doc_texts()
            for command, complete in command_lines(text)]


def argv_of(command: str) -> tuple[list[str], bool]:
    """The arguments of a documented command (shell operators and comments dropped, `[...]` unwrapped, a|b|c
    alternatives taken as the first), and whether it elides some (`...`)."""
    words = shlex.split(command, comments=True)
    words = words[: next((i for i, w in enumerate(words) if w in ("|", "&&", ";", ">", "2>")), len(words))]
    elided = "..." in words or "…" in words
    argv = [w.strip("[]").split("|")[0] for w in words if w not in ("...", "…")]
    return [w for w in argv if w], elided


def parser_for(argv: list[str]):
    """The real parser; the (sub)parser that `argv`'s command words reach."""
    parser = build_parser()
    node, words = parser, list(argv)
    while words:
        sub = next((a for a in node._actions if a.dest in ("command", "action") and a.choices), None)
        if sub is None or words[0] not in sub.choices:
            break
        node = sub.choices[words.pop(0)]
    return parser, node


def fill_placeholders(argv: list[str], node) -> list[str]:
    """Placeholders (DIR, N) stand for any value: a number where the flag takes one."""
    filled = []
    for i, word in enumerate(argv):
        action = node._option_string_actions.get(argv[i - 1]) if i else None
        if PLACEHOLDER.match(word) and action is not None and action.type in (int, float):
            word = "1"
        filled.append(word)
    return filled


def relax_required(parser) -> None:
    """Elided commands (`...`) may leave out required flags; their flags must still exist."""
    for action in parser._actions:
        action.required = False
        for choice in (action.choices or {}).values() if isinstance(action.choices, dict) else []:
            relax_required(choice)
    for group in parser._mutually_exclusive_groups:
        group.required = False


@pytest.mark.parametrize(("source", "command", "complete"), all_commands(), ids=lambda value: str(value)[:70])
def test_documented_command_parses(source, command, complete):
    argv, elided = argv_of(command)
    if not argv or PLACEHOLDER.match(argv[0]):  # `albertkit --help`, `albertkit COMMAND --help`
        argv = [w for w in argv if not PLACEHOLDER.match(w)]
    parser, node = parser_for(argv)
    if elided or not complete:
        relax_required(parser)
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(fill_placeholders(argv, node))
        except SystemExit as exit_info:
            assert exit_info.code == 0, f"{source}: `albertkit {command}`: {errors.getvalue().strip()}"


def test_the_docs_show_commands_of_every_kind():
    commands = {command.split()[0] for _, command, _ in all_commands() if command.split()}
    assert {"tokenizer", "pretrain", "finetune", "evaluate", "predict", "embed", "embed-train", "search", "serve",
            "export", "quickstart", "report", "model"} <= commands


def test_every_flag_the_docs_mention_exists():
    known = set(OTHER_PROGRAMS_FLAGS)
    stack = [build_parser()]
    while stack:
        node = stack.pop()
        known |= set(node._option_string_actions)
        stack.extend(c for a in node._actions if isinstance(a.choices, dict) for c in a.choices.values())
    mentioned = {(path.relative_to(ROOT).as_posix(), flag) for path, text in doc_texts()
                 for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", text)}
    assert sorted(m for m in mentioned if m[1] not in known) == []
