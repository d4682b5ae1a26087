"""albertkit against transformers, side by side on the same machine, inputs and configs.

Each (row, implementation) runs in its own subprocess so peak memory (RSS on CPU,
max_memory_allocated on CUDA) belongs to that measurement alone. Prints a table and writes JSON.

    python benchmarks/speed.py                       # every CPU row
    python benchmarks/speed.py --rows pretrain-tiny  # one row
    python benchmarks/speed.py --device cuda --rows pretrain-base-512 embed-sst2-fp32 embed-sst2-bf16 embed-sst2-onnx
    python benchmarks/speed.py --small --rows pretrain-base-512 embed-sst2-fp32 embed-sst2-bf16 embed-sst2-onnx
                                                     # the GPU rows end to end on a CPU, at toy sizes

Rows:
  pretrain-tiny       tiny preset, vocab 8000, batch 16 x 128, forward + backward + AdamW
  pretrain-base       base preset, vocab 30000, batch 16 x 128
  pretrain-base-512   base preset, seq 512, bf16 (CUDA)
  finetune-sst2       classification on SST-2 train sentences (real lengths), batch 32;
                      transformers pads to the longest of a random batch, albertkit buckets by length
  inference-sst2      AlbertModel over SST-2 test in file order, batch 32; real (non-pad) tokens/s
  embed-sst2-fp32     sentence embeddings of SST-2 test (base preset, mean pooling, batch 32), tokenizing included:
                      albertkit's Encoder against transformers' AutoTokenizer + AlbertModel, both fp32
  embed-sst2-bf16     the same under bf16 autocast, both sides
  embed-sst2-onnx     albertkit's ONNX export on onnxruntime (CUDA provider on a GPU) against transformers fp32

On CUDA, pretraining rows first find the largest batch whose training step fits in GPU memory and time that
batch; MFU is against the measured bf16 matmul peak. --small runs every row at toy sizes (tiny preset, seq 128,
batch 4, 3 steps, 128 sentences): it proves the script runs end to end on a machine without a GPU; its figures
are not the benchmark.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ROWS = ["pretrain-tiny", "pretrain-base", "finetune-sst2", "inference-sst2"]
EMBED_ROWS = ["embed-sst2-fp32", "embed-sst2-bf16", "embed-sst2-onnx"]
GPU_ROWS = ["pretrain-base-512", *EMBED_ROWS]


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    n = 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    reps, best = (5 if device.type == "cpu" else 50), 0.0
    for _ in range(5):  # the best of five: a busy moment must not lower the peak and so inflate the MFU
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        synchronize(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def useful_flops(config, lengths: np.ndarray, masked: int, training: bool, heads: str) -> float:
    """FLOPs of the work that matters: real tokens only, MLM vocabulary projection at masked tokens only."""
    h, e, i, n_layers = config.hidden_size, config.embedding_size, config.intermediate_size, config.num_hidden_layers
    tokens = float(lengths.sum())
    per_token = 2 * (e * h + n_layers * (4 * h * h + 2 * h * i))
    attention = float((lengths.astype(np.float64) ** 2).sum()) * n_layers * 4 * h
    total = tokens * per_token + attention + len(lengths) * 2 * (h * h + 2 * h)
    if heads == "pretraining":
        total += masked * 2 * (h * e + e * config.vocab_size)
    return total * (3 if training else 1)


def sst2_lengths(split: str, limit: int | None = None) -> np.ndarray:
    """Token counts of SST-2 sentences ([CLS] + pieces + [SEP]) under a tokenizer trained on wiki text."""
    from albertkit.tokenization.sentencepiece import AlbertTokenizer
    from albertkit.tokenization.training import train_tokenizer

    tok_dir = ROOT / "benchmarks" / "out" / "tokenizer-wiki-8k"
    if not (tok_dir / "spiece.model").is_file():
        train_tokenizer([SHARED / "en" / "wiki" / "wiki.valid.tokens"], tok_dir, vocab_size=8000, lang="en")
    tokenizer = AlbertTokenizer.from_pretrained(tok_dir)
    lines = (SHARED / "en" / "sst2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines][:limit]
    return np.array([len(ids) + 2 for ids in tokenizer.encode_batch(sentences)])


def make_models(impl: str, preset: str, vocab: int, head: str, device: torch.device, max_pos: int = 512):
    from albertkit.modeling.config import AlbertConfig

    config = AlbertConfig.from_preset(preset, vocab_size=vocab, max_position_embeddings=max_pos)
    torch.manual_seed(0)
    if impl == "transformers":
        import transformers

        model = getattr(transformers, head)(transformers.AlbertConfig(**config.to_dict(), attn_implementation="sdpa"))
    else:
        import albertkit.modeling.model as ak
        from albertkit import keep_freed_memory

        keep_freed_memory()  # what albertkit's training loop, predict and embed do before they run a model
        model = getattr(ak, head)(config)
    return config, model.to(device)


def padded(lengths: np.ndarray, vocab: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    longest = int(lengths.max())
    ids = torch.randint(5, vocab, (len(lengths), longest), generator=gen)
    mask = (torch.arange(longest)[None, :] < torch.as_tensor(lengths)[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def pretraining_batch(batch: int, seq: int, vocab: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Full-length sentence pairs with 15% of the tokens as MLM targets and random sentence-order labels."""
    inputs = padded(np.full(batch, seq), vocab, gen)
    inputs["token_type_ids"][:, seq // 2 :] = 1
    labels = torch.full_like(inputs["input_ids"], -100)
    chosen = torch.rand(labels.shape, generator=gen) < 0.15
    labels[chosen] = inputs["input_ids"][chosen]
    inputs.update(labels=labels, sentence_order_label=torch.randint(0, 2, (batch,), generator=gen))
    return inputs


def largest_batch(step, model: torch.nn.Module, seq: int, vocab: int, device: torch.device, start: int,
                  limit: int = 8192) -> int:
    """The largest pretraining batch, to a multiple of `start`, whose training step fits in GPU memory."""

    def fits(batch: int) -> bool:
        inputs = {k: v.to(device) for k, v in pretraining_batch(batch, seq, vocab, torch.Generator()).items()}
        try:
            step(inputs)
            synchronize(device)
            return True
        except torch.cuda.OutOfMemoryError:
            model.zero_grad(set_to_none=True)  # gradients the failed backward pass left behind
            return False
        finally:
            del inputs
            torch.cuda.empty_cache()

    low, high = 0, start  # low fits (0: nothing tried yet), high is the next size to try
    while high <= limit and fits(high):
        low, high = high, high * 2
    if high > limit:
        return low
    while high - low > start:  # bisect between the last size that fitted and the first that did not
        middle = (low + high) // 2 // start * start
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def run_row(row: str, impl: str, device: torch.device, steps: int, small: bool = False) -> dict:
    if row in EMBED_ROWS:
        return run_embed_row(row, impl, device, small)
    gen = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if row.endswith("512") else None
    largest = None
    if row.startswith("pretrain"):
        preset, vocab, batch, seq = ("tiny", 8000, 16, 128) if row == "pretrain-tiny" else ("base", 30000, 16, 128)
        if row == "pretrain-base-512":
            batch, seq = 32, 512
        if small:
            preset, batch, seq = "tiny", 4, 128
        config, model = make_models(impl, preset, vocab, "AlbertForPreTraining", device)
        if device.type == "cuda" and row == "pretrain-base-512":  # time the largest batch that fits
            largest = largest_batch(training_step(model, dtype, device), model, seq, vocab, device, start=8)
            batch = largest or batch
        inputs = pretraining_batch(batch, seq, vocab, gen)
        batches = [inputs]
        masked = int((inputs["labels"] != -100).sum())
        flops_per_batch = [useful_flops(config, np.full(batch, seq), masked, True, "pretraining")]
        training = True
    else:
        split = "train" if row == "finetune-sst2" else "test"
        all_lengths = sst2_lengths(split, limit=3200 if split == "train" else None)
        training = row == "finetune-sst2"
        head = "AlbertForSequenceClassification" if training else "AlbertModel"
        config, model = make_models(impl, "tiny", 8000, head, device)
        batch_size = 32
        if training and impl == "albertkit":
            from albertkit.data.batching import length_bucketed_batches

            groups = length_bucketed_batches(all_lengths, batch_size, shuffle=True, seed=0, epoch=0)
        elif training:
            order = np.random.default_rng(0).permutation(len(all_lengths))
            groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        elif impl == "albertkit":
            order = np.argsort(all_lengths, kind="stable")
            groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        else:
            groups = [np.arange(i, min(i + batch_size, len(all_lengths))) for i in range(0, len(all_lengths), batch_size)]
        batches, flops_per_batch = [], []
        for group in groups:
            inputs = padded(all_lengths[group], 8000, gen)
            if training:
                inputs["labels"] = torch.randint(0, 2, (len(group),), generator=gen)
            batches.append(inputs)
            flops_per_batch.append(useful_flops(config, all_lengths[group], 0, training, "classification"))
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    real_tokens = [int(b["attention_mask"].sum()) for b in batches]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True) if training else None
    model.train(training)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(device.type, enabled=False)

    def step(b):
        with autocast:
            out = model(**b)
        if training:
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    warmup = 2 if row.startswith("pretrain") else min(5, len(batches))
    with torch.inference_mode(not training):
        for b in batches[:warmup]:
            step(b)
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        order = [0] * steps if row.startswith("pretrain") else list(range(len(batches)))
        step_seconds = []
        for index in order:
            start = time.perf_counter()
            step(batches[index])
            synchronize(device)
            step_seconds.append(time.perf_counter() - start)
    seconds = sum(step_seconds)
    if row.startswith("pretrain"):
        # Every step is the same batch: the median step is robust to a busy moment on a shared machine.
        seconds = float(np.median(step_seconds)) * len(order)
    tokens = sum(real_tokens[i] for i in order)
    flops = sum(flops_per_batch[i] for i in order)
    memory = (
        torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    result = {"row": row, "impl": impl, "tokens_per_second": tokens / seconds, "useful_gflops": flops / seconds / 1e9,
              "peak_memory_mib": memory, "seconds": seconds, "steps": len(order),
              "mean_tokens_per_second": tokens / sum(step_seconds)}
    if largest is not None:
        result["largest_batch"] = largest
    return result


def training_step(model: torch.nn.Module, dtype: torch.dtype | None, device: torch.device):
    """One AdamW training step on a batch, for the largest-batch search (its own optimizer, thrown away)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)

    def step(b):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(**b)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sst2_texts(split: str, limit: int | None) -> list[str]:
    lines = (SHARED / "en" / "sst2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines][:limit]


def embedding_folder(preset: str, root: Path) -> Path:
    """An AlbertModel of `preset` (random weights, seed 0) with the 8k wiki tokenizer, saved as a model folder."""
    from albertkit.modeling.config import AlbertConfig
    from albertkit.modeling.model import AlbertModel
    from albertkit.tokenization.sentencepiece import AlbertTokenizer

    sst2_lengths("test", limit=1)  # trains the tokenizer once if it is missing
    tokenizer = AlbertTokenizer.from_pretrained(ROOT / "benchmarks" / "out" / "tokenizer-wiki-8k")
    folder = root / f"embed-{preset}"
    torch.manual_seed(0)
    AlbertModel(AlbertConfig.from_preset(preset, vocab_size=tokenizer.vocab_size)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_embed_row(row: str, impl: str, device: torch.device, small: bool) -> dict:
    """Embeddings of SST-2 test, batch 32, tokenizing included: tokens/s of real tokens and peak memory."""
    import tempfile

    texts = sst2_texts("test", 128 if small else None)
    precision = "bf16" if row == "embed-sst2-bf16" else "fp32"
    with tempfile.TemporaryDirectory() as tmp:
        folder = embedding_folder("tiny" if small else "base", Path(tmp))
        if impl == "transformers":
            embed = transformers_embedder(folder, device, precision)
        elif row == "embed-sst2-onnx":
            embed = onnx_embedder(folder, device, Path(tmp))
        else:
            from albertkit.inference.embed import Encoder

            encoder = Encoder(folder, device, precision=precision, max_tokens=0)  # batches of 32, as transformers

            def embed(batch_texts: list[str]) -> tuple[np.ndarray, int]:
                vectors = encoder.encode(batch_texts, batch_size=32, show_progress=False)
                return vectors, int(sum(len(ids) for ids in encoder.tokenize(batch_texts)))

        embed(texts[:64])  # warm-up
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        vectors, tokens = embed(texts)
        synchronize(device)
        seconds = time.perf_counter() - started
    memory = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"row": row, "impl": impl, "tokens_per_second": tokens / seconds, "useful_gflops": 0.0,
            "peak_memory_mib": memory, "seconds": seconds, "steps": len(texts), "texts": len(vectors)}


def transformers_embedder(folder: Path, device: torch.device, precision: str):
    """transformers' AutoTokenizer and AlbertModel (sdpa), batches of 32 in file order, mean pooling, unit length."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AlbertModel.from_pretrained(folder, attn_implementation="sdpa").to(device).eval()
    dtype = torch.bfloat16 if precision == "bf16" else None

    def embed(batch_texts: list[str]) -> tuple[np.ndarray, int]:
        out, tokens = [], 0
        for start in range(0, len(batch_texts), 32):
            inputs = tokenizer(batch_texts[start:start + 32], padding=True, truncation=True, max_length=512,
                               return_tensors="pt").to(device)
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                hidden = model(**inputs).last_hidden_state.float()
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            out.append(pooled.cpu().numpy())
            tokens += int(inputs["attention_mask"].sum())
        return np.concatenate(out), tokens

    return embed


def onnx_embedder(folder: Path, device: torch.device, tmp: Path):
    """albertkit's ONNX export (AlbertModel: last_hidden_state) on onnxruntime, albertkit's tokenizer and
    length-sorted batches of 32, mean pooling in numpy."""
    import onnxruntime

    from albertkit.inference.embed import pad_batch, with_special_tokens
    from albertkit.inference.export import export_model
    from albertkit.tokenization.loading import load_tokenizer

    report = export_model(folder, tmp / "onnx", device="cpu")
    providers = (["CUDAExecutionProvider"] if device.type == "cuda" else []) + ["CPUExecutionProvider"]
    session = onnxruntime.InferenceSession(str(report.path), providers=providers)
    tokenizer = load_tokenizer(folder)

    def embed(batch_texts: list[str]) -> tuple[np.ndarray, int]:
        ids = with_special_tokens(tokenizer.encode_batch(batch_texts), tokenizer.cls_token_id,
                                  tokenizer.sep_token_id, 512)
        order = np.argsort([-len(s) for s in ids], kind="stable")
        pooled_rows = {}
        for start in range(0, len(order), 32):
            rows = order[start:start + 32]
            input_ids, mask = pad_batch([ids[i] for i in rows], tokenizer.pad_token_id)
            feeds = {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy(),
                     "token_type_ids": np.zeros_like(input_ids.numpy())}
            hidden = session.run(["last_hidden_state"], feeds)[0]
            m = mask.numpy()[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / m.sum(1)
            for row, vector in zip(rows, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), strict=True):
                pooled_rows[int(row)] = vector
        out = np.stack([pooled_rows[i] for i in range(len(ids))])
        return out, int(sum(len(s) for s in ids))

    return embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=ROWS, choices=ROWS + GPU_ROWS)
    parser.add_argument("--small", action="store_true",
                        help="toy sizes, to prove the script runs end to end (figures are not the benchmark)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps for pretraining rows (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: all cores)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "speed.json"))
    parser.add_argument("--worker", nargs=2, metavar=("ROW", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.small:
        args.steps = min(args.steps, 3)
    from albertkit.runtime.device import resolve_device

    device = resolve_device(args.device)  # cuda without a GPU: a one-line error
    if args.worker:
        print(json.dumps(run_row(args.worker[0], args.worker[1], device, args.steps, args.small)))
        return
    peak = matmul_peak_gflops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    results = []
    print(f"device {device}, threads {torch.get_num_threads()}, matmul peak {peak:.1f} GFLOP/s")
    print(f"{'row':<18}{'impl':<14}{'tokens/s':>11}{'GFLOP/s':>10}{'MFU':>7}{'peak MiB':>10}{'ratio':>8}")
    for row in args.rows:
        pair = {}
        for impl in ("transformers", "albertkit"):
            command = [sys.executable, __file__, "--worker", row, impl, "--device", args.device, "--steps", str(args.steps)]
            command += ["--small"] if args.small else []
            if args.threads:
                command += ["--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{row} / {impl} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["mfu"] = result["useful_gflops"] / peak
            pair[impl] = result
            results.append(result)
        ratio = pair["albertkit"]["tokens_per_second"] / pair["transformers"]["tokens_per_second"]
        pair["albertkit"]["ratio"] = ratio
        for impl, r in pair.items():
            shown = f"{ratio:>7.2f}x" if impl == "albertkit" else ""
            largest = f"  largest batch {r['largest_batch']}" if "largest_batch" in r else ""
            print(f"{row:<18}{impl:<14}{r['tokens_per_second']:>11,.0f}{r['useful_gflops']:>10.1f}"
                  f"{r['mfu']:>7.0%}{r['peak_memory_mib']:>10,.0f}{shown:>8}{largest}")
    final_peak = matmul_peak_gflops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    if final_peak > peak * 1.05:
        print(f"warning: the matmul peak rose to {final_peak:.1f} GFLOP/s during the run: the machine was busy,"
              " and these figures are not reliable")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": str(device), "matmul_peak_gflops": peak, "results": results}, indent=2))


if __name__ == "__main__":
    main()
