"""The `albertkit` command: argument parsing only; every command calls a library function."""

from __future__ import annotations

import argparse
import sys

from albertkit.errors import UserError


def _add_tokenizer(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="train a SentencePiece tokenizer").add_subparsers(dest="action", required=True)
    p = tok.add_parser("train", help="train a SentencePiece unigram tokenizer with ALBERT's conventions")
    p.add_argument("--input", nargs="+", required=True, help="text files, folders or globs to learn the vocabulary from")
    p.add_argument("--vocab-size", type=int, default=30000, help="number of pieces, special tokens included")
    p.add_argument("--out", required=True, help="folder to write spiece.model and tokenizer_config.json into")
    p.add_argument("--lang", choices=["en", "zh", "auto"], default="auto", help="tunes lowercasing and character coverage")
    p.add_argument("--no-lowercase", action="store_true", help="keep case (English is lowercased by default)")
    p.add_argument("--char-vocab", action="store_true", help="character-level vocabulary (as Chinese BERT)")
    p.add_argument("--max-sentences", type=int, default=2_000_000, help="sample at most this many lines")
    p.add_argument("--seed", type=int, default=0)

    def run(args: argparse.Namespace) -> None:
        from albertkit.tokenizer import train_tokenizer

        train_tokenizer(
            args.input, args.out, vocab_size=args.vocab_size, lang=args.lang,
            lowercase=None if not args.no_lowercase else False, char_vocab=args.char_vocab,
            max_sentences=args.max_sentences, seed=args.seed,
        )

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="albertkit",
        description="Pretrain, fine-tune, evaluate and serve ALBERT models, from raw text to deployment.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_tokenizer,):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        print(f"albertkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("albertkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
