"""The `albertkit` command: argument parsing only; every command calls a library function."""

from __future__ import annotations

import argparse
import json
import os
import sys

from albertkit import __version__
from albertkit.data.prepare import prepare_pretraining_data
from albertkit.errors import UserError
from albertkit.inference.ann import INDEX_TYPES, describe_ann
from albertkit.inference.cluster import METHODS, cluster_file
from albertkit.inference.embed import embed_file, text_similarity
from albertkit.inference.export import export_model
from albertkit.inference.neighbours import VOTES, classify_by_neighbours
from albertkit.inference.onnx_backend import BACKENDS
from albertkit.inference.predict import evaluate_model, predict_file
from albertkit.inference.pretrain_eval import evaluate_pretraining, format_scores
from albertkit.inference.quantize import QUANTIZATIONS
from albertkit.inference.search import SearchIndex, build_index, format_hits, query_index
from albertkit.inference.sentence_transformers_folder import save_sentence_transformers
from albertkit.io.columnar import split_folder
from albertkit.io.tables import BadRows
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.folder import init_model_folder
from albertkit.modeling.model import HEADS
from albertkit.modeling.summary import describe_model_folder, format_model_description
from albertkit.report.render import write_report
from albertkit.runtime import console
from albertkit.runtime.device import DEVICE_HELP, INFERENCE_PRECISION_HELP, PRECISIONS, resolve_device
from albertkit.tokenization.training import train_tokenizer
from albertkit.train.contrastive import ContrastiveSettings, train_sentence_embeddings
from albertkit.train.distill import SHAPE_FIELDS, DistillSettings, run_distillation
from albertkit.train.finetune import FinetuneSettings, run_finetuning
from albertkit.train.memory_plan import format_training_memory, training_memory
from albertkit.train.pretrain import PretrainSettings, run_pretraining
from albertkit.train.prune import prune_model_folder
from albertkit.train.seeds import format_seeds, parse_seeds, run_seeds
from albertkit.train.settings import add_settings_flags, given_settings
from albertkit.train.tune import run_tuning


def _add_device_flags(p: argparse.ArgumentParser, precision: bool = True, max_tokens: bool = False) -> None:
    """--device (and --precision, --max-tokens) of a command that runs a model for inference."""
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    if precision:
        p.add_argument("--precision", choices=PRECISIONS, default="auto", help=INFERENCE_PRECISION_HELP)
    if max_tokens:
        p.add_argument("--max-tokens", type=int, default=None,
                       help="padded tokens per batch: texts are batched by this budget instead of --batch-size "
                            "(default: 16384 on CUDA, batches of --batch-size elsewhere; 0: batches of --batch-size)")


def _add_quantize_flag(parser: argparse.ArgumentParser, more: str = "") -> None:
    parser.add_argument("--quantize", choices=QUANTIZATIONS,
                        help="int8: PyTorch dynamic quantization of the linear layers, on the CPU" + more)


SPLIT_HELP = "the split to read from a DatasetDict folder (default: train for corpora; tables need one)"


def _split(path: str | None, split: str | None) -> str | None:
    """The folder of split `split` of a DatasetDict `path` (the path itself without a split)."""
    return str(split_folder(path, split)) if split and path else path
def _add_skip_bad_rows(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip (and count) rows of the input file that cannot be read, instead of stopping at the first")


def _add_backend_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="onnx: run the folder's ONNX export (albertkit export; model_quantized.onnx with "
                             "--quantize int8) on onnxruntime")


def _add_tokenizer(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="train a SentencePiece tokenizer").add_subparsers(dest="action", required=True)
    p = tok.add_parser("train", help="train a SentencePiece unigram tokenizer with ALBERT's conventions")
    p.add_argument("--input", nargs="+", required=True,
                   help="text files (.txt, .jsonl, .gz), parquet/Arrow files or datasets folders, folders or globs")
    p.add_argument("--vocab-size", type=int, default=30000, help="number of pieces, special tokens included")
    p.add_argument("--out", required=True, help="folder to write spiece.model and tokenizer_config.json into")
    p.add_argument("--lang", choices=["en", "zh", "auto"], default="auto", help="zh: character coverage 0.9995 and digits split; auto: zh when CJK is 10%% of letters")
    p.add_argument("--no-lowercase", action="store_true", help="keep case (lowercased by default)")
    p.add_argument("--char-vocab", action="store_true", help="one character per piece (as Chinese BERT); --vocab-size becomes an upper bound")
    p.add_argument("--max-sentences", type=int, default=2_000_000, help="train on a seeded random sample of at most this many lines")
    p.add_argument("--seed", type=int, default=0, help="seed of the line sample")
    p.add_argument("--split", help=SPLIT_HELP)

    def run(args: argparse.Namespace) -> None:
        train_tokenizer(
            args.input, args.out, vocab_size=args.vocab_size, lang=args.lang,
            lowercase=False if args.no_lowercase else None, char_vocab=args.char_vocab,
            max_sentences=args.max_sentences, seed=args.seed, split=args.split,
        )

    p.set_defaults(func=run)


def training_memory_table(model_dir: str | None, preset: str | None, processes: int) -> str:
    """`model info --training-memory`: the DDP and FSDP table of a model folder or a preset."""
    if (model_dir is None) == (preset is None):
        raise UserError("--training-memory needs a model folder or --preset NAME (one of them)")
    if processes < 1:
        raise UserError(f"--processes must be at least 1, got {processes}")
    config = AlbertConfig.from_preset(preset) if preset else AlbertConfig.from_pretrained(model_dir)
    return format_training_memory(preset or model_dir, config, training_memory(config, processes))


def _add_model(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="create or inspect a model folder").add_subparsers(dest="action", required=True)
    p = model.add_parser("init", help="write a freshly initialised model of a preset, with its tokenizer")
    p.add_argument("--preset", default="tiny", help="tiny, small, base, large, xlarge or xxlarge")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder (from `albertkit tokenizer train`)")
    p.add_argument("--out", required=True, help="folder to write the model into")
    p.add_argument("--head", default="AlbertForPreTraining", help="model class, e.g. AlbertForSequenceClassification")
    p.add_argument("--seed", type=int, default=0)

    def run_init(args: argparse.Namespace) -> None:
        if args.head not in HEADS:
            raise UserError(f"unknown head {args.head!r}; choose one of {', '.join(HEADS)}")
        init_model_folder(args.preset, args.tokenizer, args.out, head=args.head, seed=args.seed)
        console.say(format_model_description(describe_model_folder(args.out)))

    p.set_defaults(func=run_init)
    p = model.add_parser("info", help="config and parameter counts by component of a model folder")
    p.add_argument("model_dir", nargs="?", help="an HF-format ALBERT folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--training-memory", action="store_true",
                   help="memory per training process (weights, gradients, optimizer state) for DDP and FSDP")
    p.add_argument("--preset", help="with --training-memory: a preset (e.g. xxlarge) instead of a model folder")
    p.add_argument("--processes", type=int, default=8, help="with --training-memory: processes to shard over")

    def run_info(args: argparse.Namespace) -> None:
        if args.training_memory:
            print(training_memory_table(args.model_dir, args.preset, args.processes))
            return
        if args.model_dir is None:
            raise UserError("model info needs a model folder (or --training-memory --preset NAME)")
        description = describe_model_folder(args.model_dir)
        print(json.dumps(description, indent=2, ensure_ascii=False) if args.json else format_model_description(description))

    p.set_defaults(func=run_info)


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="sentence embeddings of every line of a file")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--input", help="text file (one text per line), .jsonl, .tsv, .csv, parquet, Arrow or a datasets folder")
    p.add_argument("--split", help=SPLIT_HELP)
    p.add_argument("--output", help="OUT.npy (float32 rows) or OUT.parquet (needs pyarrow)")
    p.add_argument("--save-sentence-transformers", metavar="DIR",
                   help="instead of embedding a file, write DIR: a sentence-transformers model giving these embeddings")
    p.add_argument("--text-column", help="column name or 0-based index for .tsv/.csv")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--pooling", choices=["mean", "cls", "pooler"], default="mean")
    p.add_argument("--no-normalize", action="store_true", help="keep raw lengths instead of unit vectors")
    _add_quantize_flag(p)
    _add_device_flags(p, max_tokens=True)
    _add_skip_bad_rows(p)

    def run(args: argparse.Namespace) -> None:
        if args.save_sentence_transformers:
            if args.input or args.output:
                raise UserError("--save-sentence-transformers writes a model, not embeddings: drop --input/--output")
            out = save_sentence_transformers(args.model, args.save_sentence_transformers, pooling=args.pooling,
                                             normalize=not args.no_normalize)
            console.say(f"wrote a sentence-transformers model to {out}")
            return
        if not (args.input and args.output):
            raise UserError("embed needs --input FILE and --output OUT.npy (or --save-sentence-transformers DIR)")
        bad_rows = BadRows(args.skip_bad_rows)
        count = embed_file(args.model, _split(args.input, args.split), args.output, text_column=args.text_column,
                           batch_size=args.batch_size, pooling=args.pooling, normalize=not args.no_normalize,
                           device=args.device, precision=args.precision, max_tokens=args.max_tokens,
                           quantize=args.quantize, bad_rows=bad_rows)
        console.say(f"embedded {count:,} texts into {args.output}{bad_rows.summary()}")

    p.set_defaults(func=run)
    _add_embed_train(sub)


def _add_embed_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed-train", help="contrastive fine-tuning for sentence similarity (SimCSE)")
    p.add_argument("--model", required=True, help="model folder whose encoder is trained")
    p.add_argument("--out", required=True, help="run folder: logs, checkpoints, the model in OUT/final, report")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--sentences", help="raw sentences, one per line: unsupervised SimCSE (dropout views)")
    data.add_argument("--pairs", help="sentence1<TAB>sentence2<TAB>label .tsv: supervised, label 1 = paraphrase")
    p.add_argument("--eval-pairs", help="held-out pairs: Spearman of cosine vs label, before and during training")
    add_settings_flags(p, ContrastiveSettings)

    def run(args: argparse.Namespace) -> None:
        result, before = train_sentence_embeddings(
            args.model, args.out, sentences=args.sentences, pairs=args.pairs, eval_pairs=args.eval_pairs,
            config_path=args.config, resume=args.resume, **given_settings(args, ContrastiveSettings),
        )
        if before is not None:
            console.say(f"spearman before {before:.4f}, after {result.final_metrics.get('spearman', float('nan')):.4f}")

    p.set_defaults(func=run)


def _add_search(sub: argparse._SubParsersAction) -> None:
    search = sub.add_parser("search", help="semantic search: build an index, query it").add_subparsers(
        dest="action", required=True)
    p = search.add_parser("build", help="embed the texts of a file into an index folder")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--input", required=True, help="text file (one text per line), .jsonl, .tsv, .csv, parquet, Arrow or a datasets folder")
    p.add_argument("--split", help=SPLIT_HELP)
    p.add_argument("--index", required=True, help="index folder to write")
    p.add_argument("--text-column", help="column name or 0-based index for .tsv/.csv")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--pooling", choices=["mean", "cls", "pooler"], default="mean")
    p.add_argument("--label-column", help="also store each text's label (column name or index) for knn-classify")
    p.add_argument("--index-type", choices=INDEX_TYPES, default="exact",
                   help="exact (default), or an approximate faiss index for large indexes: hnsw (a graph) or ivf "
                        "(k-means cells); needs the ann extra")
    p.add_argument("--target-recall", type=float, default=0.95,
                   help="hnsw/ivf: raise the search effort until recall@10 against exact search reaches this")
    _add_device_flags(p, max_tokens=True)
    _add_skip_bad_rows(p)

    def run_build(args: argparse.Namespace) -> None:
        bad_rows = BadRows(args.skip_bad_rows)
        count = build_index(args.model, _split(args.input, args.split), args.index, text_column=args.text_column,
                            batch_size=args.batch_size, pooling=args.pooling, label_column=args.label_column,
                            device=args.device, precision=args.precision, max_tokens=args.max_tokens,
                            index_type=args.index_type, target_recall=args.target_recall, bad_rows=bad_rows)
        console.say(f"indexed {count:,} texts into {args.index}{bad_rows.summary()}; "
                    f"{describe_ann(SearchIndex(args.index).meta)}")

    p.set_defaults(func=run_build)
    p = search.add_parser("query", help="the k indexed texts nearest to each query (cosine)")
    p.add_argument("--index", required=True, help="index folder (from `albertkit search build`)")
    p.add_argument("texts", nargs="+", help="query texts")
    p.add_argument("-k", type=int, default=5, help="results per query")
    p.add_argument("--model", help="model folder (default: the one the index was built with; must be the same)")
    p.add_argument("--json", action="store_true", help="print one JSON line per query")
    _add_device_flags(p)

    def run_query(args: argparse.Namespace) -> None:
        print(format_hits(args.texts, query_index(args.index, args.texts, k=args.k, model_dir=args.model,
                                                        device=args.device, precision=args.precision), args.json))

    p.set_defaults(func=run_query)


def _add_similarity(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("similarity", help="cosine similarity of two texts' embeddings")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("text_a", help="first text")
    p.add_argument("text_b", help="second text")
    p.add_argument("--pooling", choices=["mean", "cls", "pooler"], default="mean", help="as in `albertkit embed`")
    _add_device_flags(p)

    def run(args: argparse.Namespace) -> None:
        print(f"{text_similarity(args.model, args.text_a, args.text_b, args.pooling, args.device, args.precision):.4f}")

    p.set_defaults(func=run)


def _add_cluster(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="cluster a file's texts by their embeddings; terms, central texts, a map")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--input", required=True, help="text file (one text per line), .jsonl, .tsv or .csv")
    p.add_argument("--out", required=True, help="folder: assignments.tsv, clusters.json, metrics.json, map.html")
    p.add_argument("--k", type=int, help="number of clusters (default: 2..10, the best silhouette)")
    p.add_argument("--method", choices=METHODS, default="kmeans", help="hdbscan finds the number itself")
    p.add_argument("--min-cluster-size", type=int, help="hdbscan: smallest cluster (default: 1%% of texts, >= 5)")
    p.add_argument("--text-column", help="column name or 0-based index for .tsv/.csv")
    p.add_argument("--label-column", help="known labels (column name or index): NMI, ARI and purity in metrics.json")
    p.add_argument("--pooling", choices=["mean", "cls", "pooler"], default="mean")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    _add_device_flags(p)

    def run(args: argparse.Namespace) -> None:
        metrics = cluster_file(args.model, args.input, args.out, k=args.k, method=args.method,
                               text_column=args.text_column, label_column=args.label_column, pooling=args.pooling,
                               batch_size=args.batch_size, seed=args.seed, min_cluster_size=args.min_cluster_size,
                               device=args.device, precision=args.precision)
        print(json.dumps({k: v for k, v in metrics.items() if k != "silhouette_by_k"}, indent=2))
        console.say(f"wrote {args.out}/assignments.tsv, clusters.json, metrics.json and map.html")

    p.set_defaults(func=run)


def _add_knn_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("knn-classify", help="classify a labelled file by the vote of its nearest labelled texts")
    p.add_argument("--index", required=True, help="index folder built with `search build --label-column`")
    p.add_argument("--input", required=True, help="held-out labelled .tsv/.csv file")
    p.add_argument("-k", type=int, default=10, help="neighbours that vote")
    p.add_argument("--vote", choices=VOTES, default="majority", help="weighted: sum of cosine similarities")
    p.add_argument("--text-column", help="column name or 0-based index")
    p.add_argument("--label-column", help="column name or index (default: the index's label column)")
    p.add_argument("--model", help="model folder (default: the one the index was built with; must be the same)")
    p.add_argument("--output", help="FILE.jsonl: line, label, predicted label and neighbours' lines of each row")
    p.add_argument("--batch-size", type=int, default=32)
    _add_device_flags(p)

    def run(args: argparse.Namespace) -> None:
        print(json.dumps(classify_by_neighbours(
            args.index, args.input, k=args.k, how=args.vote, text_column=args.text_column,
            label_column=args.label_column, model_dir=args.model, output=args.output, batch_size=args.batch_size,
            device=args.device, precision=args.precision,
        ), indent=2, ensure_ascii=False))

    p.set_defaults(func=run)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP inference server with a demo page")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("ALBERTKIT_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/ (default: $ALBERTKIT_API_KEY)")
    p.add_argument("--max-batch", type=int, default=64, help="texts per forward pass")
    p.add_argument("--max-chars", type=int, default=10000, help="characters per text")
    p.add_argument("--max-texts", type=int, default=256, help="texts per request")
    p.add_argument("--index", help="search index folder (built with the same model) for /v1/search")
    _add_quantize_flag(p)
    _add_device_flags(p)
    _add_backend_flag(p)

    def run(args: argparse.Namespace) -> None:
        from albertkit.serve import serve  # needs fastapi and uvicorn (the serve extra)

        serve(args.model, host=args.host, port=args.port, api_key=args.api_key, max_batch=args.max_batch,
              max_chars=args.max_chars, max_texts=args.max_texts, index_dir=args.index, quantize=args.quantize,
              device=args.device, precision=args.precision)

    p.set_defaults(func=run)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="(re)write a run folder's report.html and report.md from its logs")
    p.add_argument("run_dir", help="the output folder of a pretraining or fine-tuning run (holds log.jsonl)")

    def run(args: argparse.Namespace) -> None:
        console.say(f"wrote {write_report(args.run_dir)}")

    p.set_defaults(func=run)


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    pretrain_sub = sub.add_parser("pretrain", help="prepare pretraining data and pretrain with MLM + SOP").add_subparsers(
        dest="action", required=True
    )
    _add_pretrain_prepare(pretrain_sub)
    _add_pretrain_run(pretrain_sub)
    _add_pretrain_evaluate(pretrain_sub)


def _add_pretrain_evaluate(pretrain_sub: argparse._SubParsersAction) -> None:
    p = pretrain_sub.add_parser(
        "evaluate", help="held-out MLM (every scored token shown as [MASK]) and SOP of a model folder on raw text")
    p.add_argument("--model", required=True, help="ALBERT folder with an MLM head and its tokenizer (albertkit or transformers)")
    p.add_argument("--input", nargs="+", required=True, help="raw text files (.txt, .jsonl, .gz), folders or globs")
    p.add_argument("--max-seq-length", type=int, default=128, help="tokens per sentence pair")
    p.add_argument("--max-documents", type=int, default=None, help="evaluate the first N documents only")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs and masks")
    p.add_argument("--output", default=None, help="also write the scores to this JSON file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_device_flags(p)

    def run(args: argparse.Namespace) -> None:
        scores = evaluate_pretraining(args.model, args.input, max_seq_length=args.max_seq_length,
                                      max_documents=args.max_documents, batch_size=args.batch_size, seed=args.seed,
                                      output=args.output, device=args.device, precision=args.precision)
        print(json.dumps(scores, indent=2) if args.json else format_scores(scores))

    p.set_defaults(func=run)


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a task head: classification, pair, regression, ner or qa")
    p.add_argument("--model", required=True, help="pretrained model folder (albertkit or any HF ALBERT folder)")
    p.add_argument("--train", required=True, help="training file: TSV/CSV/JSONL, CoNLL or chars<TAB>tags, SQuAD JSON")
    p.add_argument("--dev", required=True, help="dev file, same format; picks the best model and early stopping")
    p.add_argument("--test", default=None, help="evaluated with the best model at the end (test_metrics.json)")
    p.add_argument("--out", required=True, help="run folder: logs, checkpoints, best/ and final/ models, report")
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2: one run each in OUT/seed-N, mean ± std "
                   "in OUT/seeds.json, the best seed's model in OUT/best")
    add_settings_flags(p, FinetuneSettings)

    def run(args: argparse.Namespace) -> None:
        settings = given_settings(args, FinetuneSettings)
        task = settings.pop("task", None)
        if args.seeds is not None:
            print(format_seeds(run_seeds(parse_seeds(args.seeds), task, args.model, args.train, args.dev, args.out,
                                         test_path=args.test, config_path=args.config, resume=args.resume,
                                         **settings)))
            return
        run_finetuning(task, args.model, args.train, args.dev, args.out, test_path=args.test,
                       config_path=args.config, resume=args.resume, **settings)

    p.set_defaults(func=run)


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="hyperparameter search over a fine-tuning config (optuna), pruning hopeless trials")
    p.add_argument("--config", required=True, metavar="TUNE.yaml",
                   help="config, model, train, dev, out, trials and the search ranges (see the README)")
    p.add_argument("--model", help="override the tune file's model folder")
    p.add_argument("--train", help="override the tune file's training file")
    p.add_argument("--dev", help="override the tune file's dev file")
    p.add_argument("--out", help="override the tune file's output folder")
    p.add_argument("--trials", type=int, help="override the tune file's number of trials")
    p.add_argument("--timeout-minutes", type=float, help="start no trial after this many minutes")

    def run(args: argparse.Namespace) -> None:
        summary = run_tuning(args.config, model=args.model, train=args.train, dev=args.dev, out=args.out,
                             trials=args.trials, timeout_minutes=args.timeout_minutes)
        print(json.dumps(summary, indent=2))

    p.set_defaults(func=run)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics of a fine-tuned model on a labeled file, as JSON")
    p.add_argument("--model", required=True, help="fine-tuned model folder (e.g. OUT/best)")
    p.add_argument("--data", required=True, help="labeled file in the training file's format (or parquet, Arrow, a datasets folder)")
    p.add_argument("--split", help=SPLIT_HELP)
    p.add_argument("--output", default=None, help="JSON file for the metrics (default: printed only)")
    p.add_argument("--batch-size", type=int, default=64)
    _add_quantize_flag(p, " (the float32 figures and the change are reported beside)")
    _add_device_flags(p, max_tokens=True)
    _add_backend_flag(p)
    _add_skip_bad_rows(p)

    def run(args: argparse.Namespace) -> None:
        metrics = evaluate_model(args.model, _split(args.data, args.split), args.output, args.batch_size, quantize=args.quantize,
                                 device=args.device, precision=args.precision, max_tokens=args.max_tokens,
                                 backend=args.backend, bad_rows=BadRows(args.skip_bad_rows))
        print(json.dumps(metrics, indent=2, ensure_ascii=False))

    p.set_defaults(func=run)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predictions of a fine-tuned model for every example of a file")
    p.add_argument("--model", required=True, help="fine-tuned model folder (e.g. OUT/best)")
    p.add_argument("--input", required=True, help="file in the training file's format (or parquet, Arrow, a datasets folder); labels may be absent")
    p.add_argument("--split", help=SPLIT_HELP)
    p.add_argument("--output", required=True, help="FILE.jsonl (labels, probabilities, entities, answers) or FILE.csv")
    p.add_argument("--batch-size", type=int, default=64)
    _add_quantize_flag(p)
    _add_device_flags(p, max_tokens=True)
    _add_backend_flag(p)
    _add_skip_bad_rows(p)

    def run(args: argparse.Namespace) -> None:
        bad_rows = BadRows(args.skip_bad_rows)
        count = predict_file(args.model, _split(args.input, args.split), args.output, args.batch_size, quantize=args.quantize,
                             device=args.device, precision=args.precision, max_tokens=args.max_tokens,
                             backend=args.backend, bad_rows=bad_rows)
        console.say(f"wrote {count:,} predictions to {args.output}{bad_rows.summary()}")

    p.set_defaults(func=run)


def _add_quickstart(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="the whole chain on the bundled sample (or --data DIR) in a few minutes")
    p.add_argument("--out", default="quickstart-run", help="run folder (default quickstart-run)")
    p.add_argument("--data", default=None,
                   help="your data: a folder with corpus text (*.txt/*.jsonl/*.gz) and train.tsv, dev.tsv")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the bundled sample")
    p.add_argument("--pretrain-minutes", type=float, default=2.0, help="pretraining time budget")
    p.add_argument("--seed", type=int, default=0)

    def run(args: argparse.Namespace) -> None:
        from albertkit.quickstart import run_quickstart  # it pulls in serve, which needs fastapi (an extra)

        run_quickstart(args.out, args.data, args.lang, pretrain_minutes=args.pretrain_minutes, seed=args.seed)

    p.set_defaults(func=run)


def _add_pretrain_run(pretrain_sub: argparse._SubParsersAction) -> None:
    p = pretrain_sub.add_parser("run", help="pretrain with masked LM + sentence-order prediction")
    p.add_argument("--data", required=True, nargs="+",
                   help="folder(s) written by `albertkit pretrain prepare`; several are read as one corpus")
    p.add_argument("--model", default=None, help="model folder to continue pretraining from")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the one saved with the data)")
    p.add_argument("--out", required=True, help="run folder: logs, checkpoints, final/ model, report")
    add_settings_flags(p, PretrainSettings)

    def run(args: argparse.Namespace) -> None:
        run_pretraining(args.data, args.out, model_dir=args.model, tokenizer_dir=args.tokenizer,
                        config_path=args.config, resume=args.resume, **given_settings(args, PretrainSettings))

    p.set_defaults(func=run)


def _add_pretrain_prepare(pretrain_sub: argparse._SubParsersAction) -> None:
    p = pretrain_sub.add_parser("prepare", help="split raw text into sentences and tokenize it into token shards")
    p.add_argument("--input", nargs="+", required=True,
                   help="text files (.txt, .jsonl, .gz), parquet/Arrow files or datasets folders (one document "
                   "per row of the text column), folders or globs")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder: spiece.model (e.g. from `tokenizer train`), tokenizer.json or a BERT vocab.txt")
    p.add_argument("--out", required=True, help="folder to write the prepared data into (replaced when complete)")
    p.add_argument("--max-seq-length", type=int, default=128, help="default sequence length of the examples")
    p.add_argument("--lang", choices=["auto", "en", "zh"], default="auto", help="sentence-splitting rules")
    p.add_argument("--workers", type=int, default=None, help="tokenizing processes (default: all cores)")
    p.add_argument("--valid-fraction", type=float, default=0.01, help="share of documents held out for validation")
    p.add_argument("--whole-word-mask", choices=["zh"], default=None,
                   help="zh: Chinese word boundaries from jieba instead of one word per character")
    p.add_argument("--config", default=None, help="model folder whose max_position_embeddings bounds the length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-shards", type=int, default=1,
                   help="cut the corpus into this many slices, one per machine (`pretrain run --data` reads them all)")
    p.add_argument("--shard-index", type=int, default=0, help="which slice (0 .. num-shards - 1) this run prepares")
    p.add_argument("--split", help=SPLIT_HELP)

    def run(args: argparse.Namespace) -> None:
        prepare_pretraining_data(
            args.input, args.tokenizer, args.out, max_seq_length=args.max_seq_length, lang=args.lang,
            workers=args.workers, valid_fraction=args.valid_fraction, whole_word_mask=args.whole_word_mask,
            seed=args.seed, config=args.config, num_shards=args.num_shards, shard_index=args.shard_index,
            split=args.split,
        )

    p.set_defaults(func=run)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model folder to ONNX (optionally int8), checked against PyTorch")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", required=True,
                   help="folder to write: model.onnx, config.json and the tokenizer files (optimum's layout)")
    p.add_argument("--quantize", choices=["int8"],
                   help="also model_quantized.onnx: dynamic int8 quantization of the weights")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17 or newer)")
    p.add_argument("--device", default="auto", help=f"where PyTorch runs the float32 parity check: {DEVICE_HELP}")

    def run(args: argparse.Namespace) -> None:
        console.say(export_model(args.model, args.out, format=args.format, quantize=args.quantize, opset=args.opset,
                           device=args.device).summary())

    p.set_defaults(func=run)


def _add_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="remove the least important attention heads and FFN neurons of a fine-tuned model")
    p.add_argument("--model", required=True, help="fine-tuned model folder (e.g. OUT/best)")
    p.add_argument("--dev", required=True, help="labeled file: importance is measured by gradients of its loss")
    p.add_argument("--out", required=True, help="folder for the pruned model (loads in albertkit and transformers)")
    p.add_argument("--heads", type=float, default=0.5, help="share of each layer's attention heads to remove")
    p.add_argument("--ffn", type=float, default=0.5, help="share of each layer's FFN neurons to remove")
    p.add_argument("--recover-train", help="training file for a short recovery fine-tune of the pruned model")
    p.add_argument("--recover-epochs", type=float, default=1.0, help="epochs of the recovery fine-tune")
    p.add_argument("--recover-time-budget", type=float, help="minutes after which the recovery fine-tune stops (its decay planned to end then)")
    p.add_argument("--recover-lr", type=float, default=5e-5, help="peak learning rate of the recovery fine-tune")
    p.add_argument("--batch-size", type=int, default=32, help="rows per batch (importance and recovery)")
    p.add_argument("--seed", type=int, default=0, help="seed of the recovery fine-tune")

    def run(args: argparse.Namespace) -> None:
        recovery = dict(epochs=args.recover_epochs, learning_rate=args.recover_lr, seed=args.seed,
                        save_every_minutes=0.0,
                        time_budget_minutes=args.recover_time_budget)
        if args.recover_train is None and (args.recover_epochs, args.recover_lr, args.recover_time_budget) != (
                1.0, 5e-5, None):
            raise UserError("--recover-epochs, --recover-lr and --recover-time-budget need --recover-train FILE")
        summary = prune_model_folder(args.model, args.dev, args.out, heads=args.heads, ffn=args.ffn,
                                     recover_train=args.recover_train, batch_size=args.batch_size, **recovery)
        print(json.dumps(summary, indent=2))

    p.set_defaults(func=run)


def _add_distill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="train a smaller student on a fine-tuned teacher's soft targets and labels")
    p.add_argument("--teacher", required=True, help="fine-tuned model folder: classification, pair, regression or ner")
    p.add_argument("--train", required=True, help="training file in the teacher's format")
    p.add_argument("--dev", required=True, help="dev file, same format; picks the best student")
    p.add_argument("--out", required=True, help="run folder: logs, checkpoints, best/ and final/ students, report")
    p.add_argument("--unlabeled", help="more texts in the task's format without labels: soft targets only")
    student = p.add_argument_group("student (default: the teacher's shape with the shape flags given)")
    student.add_argument("--student", metavar="DIR", help="a pretrained ALBERT folder to start the student from")
    student.add_argument("--student-preset", help="a preset's shape: tiny, small, base, ...")
    for name in SHAPE_FIELDS:
        student.add_argument("--" + name.replace("_", "-"), type=int, dest=name)
    add_settings_flags(p, DistillSettings)

    def run(args: argparse.Namespace) -> None:
        shape = {name: getattr(args, name) for name in SHAPE_FIELDS if getattr(args, name) is not None}
        result = run_distillation(args.teacher, args.train, args.dev, args.out, student_dir=args.student,
                                  student_preset=args.student_preset, shape=shape, unlabeled_path=args.unlabeled,
                                  config_path=args.config, resume=args.resume, **given_settings(args, DistillSettings))
        print(f"best dev {result.best_metric} at step {result.best_step}; student in {args.out}/best")

    p.set_defaults(func=run)


def _add_compress(sub: argparse._SubParsersAction) -> None:
    """Smaller, faster models: prune and distill."""
    _add_prune(sub)
    _add_distill(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="albertkit",
        description="Pretrain, fine-tune, evaluate and serve ALBERT models, from raw text to deployment.",
    )
    parser.add_argument("--version", action="version", version=f"albertkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_quickstart, _add_tokenizer, _add_model, _add_finetune, _add_tune, _add_evaluate, _add_predict, _add_embed, _add_similarity, _add_search, _add_knn_classify, _add_cluster, _add_serve, _add_export, _add_report, _add_pretrain):
        add(sub)
    _add_compress(sub)
    for command in _commands(parser):
        _add_console_flags(command)
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of every runnable command (`albertkit finetune`, `albertkit pretrain run`, ...)."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return [parser]
    return [command for action in subparsers for child in action.choices.values() for command in _commands(child)]


def _add_console_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("console")
    group.add_argument("--quiet", "-q", action="store_true",
                       help="only errors and the command's results: no status lines, warnings or progress bars")
    group.add_argument("--log-level", choices=console.LOG_LEVELS, default=None,
                       help="messages shown on stderr (default: info; error with --quiet)")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bars on or off (default: on when stdout is a terminal, off with --quiet)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.configure(args.log_level, quiet=args.quiet, progress=args.progress)
    try:
        if getattr(args, "device", None) is not None:
            resolve_device(args.device)  # an absent GPU is refused before the command writes anything
        args.func(args)
    except UserError as err:
        print(f"albertkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("albertkit: interrupted", file=sys.stderr)
        return 130
    finally:
        console.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
