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


def _add_model(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="create or inspect a model folder").add_subparsers(dest="action", required=True)
    p = model.add_parser("init", help="write a freshly initialised model of a preset, with its tokenizer")
    p.add_argument("--preset", default="tiny", help="tiny, small, base, large, xlarge or xxlarge")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder (from `albertkit tokenizer train`)")
    p.add_argument("--out", required=True, help="folder to write the model into")
    p.add_argument("--head", default="AlbertForPreTraining", help="model class, e.g. AlbertForSequenceClassification")
    p.add_argument("--seed", type=int, default=0)

    def run_init(args: argparse.Namespace) -> None:
        from albertkit.model import HEADS
        from albertkit.model_folder import describe_model_folder, format_model_description, init_model_folder

        if args.head not in HEADS:
            raise UserError(f"unknown head {args.head!r}; choose one of {', '.join(HEADS)}")
        init_model_folder(args.preset, args.tokenizer, args.out, head=args.head, seed=args.seed)
        print(format_model_description(describe_model_folder(args.out)))

    p.set_defaults(func=run_init)
    p = model.add_parser("info", help="config and parameter counts by component of a model folder")
    p.add_argument("model_dir", help="an HF-format ALBERT folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    def run_info(args: argparse.Namespace) -> None:
        import json

        from albertkit.model_folder import describe_model_folder, format_model_description

        description = describe_model_folder(args.model_dir)
        print(json.dumps(description, indent=2, ensure_ascii=False) if args.json else format_model_description(description))

    p.set_defaults(func=run_info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="albertkit",
        description="Pretrain, fine-tune, evaluate and serve ALBERT models, from raw text to deployment.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_tokenizer, _add_model):
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
