"""What a model folder can answer: classify, embed, fill-mask, NER, QA, each as a batch function on inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.inference.embed import Encoder, pad_batch
from albertkit.inference.predict import run_features
from albertkit.modeling.folder import read_model_info
from albertkit.runtime.device import autocast
from albertkit.tasks.metrics import entity_spans
from albertkit.tasks.ner import most_central, word_windows
from albertkit.tasks.qa import QaExample, featurize_qa, qa_best_spans
from albertkit.tasks.spec import TaskSpec
from albertkit.tokenization.loading import tokenizer_summary

TASKS = ("classify", "embed", "fill-mask", "ner", "qa")
NER_WINDOWS_PER_PASS = 64  # windows of long NER texts go through the model this many at a time
QA_WINDOWS_PER_PASS = 32  # question + context windows (up to max_seq_length each) per forward pass


class TaskModel:
    """One loaded model folder and the batch functions its head supports (`tasks`).

    Every batch function takes a list of texts (fill-mask: (text, top_k) pairs) and returns one JSON-ready
    result per item, in order. They run one padded forward pass on the unpadded path, under inference mode.
    """

    def __init__(self, model_dir: str | Path, pooling: str = "mean", quantize: str | None = None,
                 device: str = "auto", precision: str = "auto", backend: str = "torch"):
        self.encoder = Encoder(model_dir, device=device, precision=precision, quantize=quantize, backend=backend)
        self.model = self.encoder.model
        self.tokenizer = self.encoder.tokenizer
        self.info = read_model_info(model_dir)
        self.pooling = pooling
        # An ONNX export runs its head's outputs only: no embeddings or fill-mask, which read the encoder's layers.
        encoder_layers = self.encoder.albert is not None
        functions: dict[str, Callable[[list[Any]], list[Any]]] = {"embed": self.embed} if encoder_layers else {}
        if self.architecture == "AlbertForSequenceClassification":
            functions["classify"] = self.classify
        if self.architecture in ("AlbertForMaskedLM", "AlbertForPreTraining") and encoder_layers:
            functions["fill-mask"] = self.fill_mask
        if self.architecture == "AlbertForTokenClassification":
            functions["ner"] = self.ner
        if self.architecture == "AlbertForQuestionAnswering":
            functions["qa"] = self.answer
        self.functions = {name: self._in_precision(fn) for name, fn in functions.items()}

    def _in_precision(self, function: Callable[[list[Any]], list[Any]]) -> Callable[[list[Any]], list[Any]]:
        """`function` run under the Encoder's autocast (bf16 on CUDA by default; nothing in fp32)."""

        def run(items: list[Any]) -> list[Any]:
            with autocast(self.encoder.device, self.encoder.amp_dtype):
                return function(items)

        return run

    @property
    def architecture(self) -> str:
        """The head's class name (an ONNX export's from its config.json)."""
        if isinstance(self.model, torch.nn.Module):
            return type(self.model).__name__
        return (self.model.config.architectures or ["AlbertModel"])[0]

    @property
    def tasks(self) -> list[str]:
        return [task for task in TASKS if task in self.functions]

    @property
    def labels(self) -> list[str]:
        """Label names of a classification or NER head, by id."""
        config = self.model.config
        id2label = config.id2label or {i: f"LABEL_{i}" for i in range(config.num_labels)}
        return [id2label[i] for i in range(len(id2label))]

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "architecture": self.architecture, "tasks": self.tasks,
            "labels": self.labels if {"classify", "ner"} & set(self.functions) else None,
            "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers,
            "vocab_size": config.vocab_size, "max_length": self.encoder.max_length, "pooling": self.pooling,
            "task": self.info.get("task"), "tokenizer": tokenizer_summary(self.tokenizer),
        }

    def _batch(self, texts: list[str]) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
        sequences = self.encoder.tokenize(texts)
        input_ids, attention_mask = pad_batch(sequences, self.tokenizer.pad_token_id)
        return sequences, input_ids, attention_mask

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        """Unit-length embeddings (the encoder's pooling), one float32 row per text."""
        return list(self.encoder.encode(texts, batch_size=max(1, len(texts)), pooling=self.pooling,
                                        show_progress=False))

    @torch.inference_mode()
    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        """{"label", "score", "scores": {label: probability}} per text; regression heads give {"score"}."""
        _, input_ids, attention_mask = self._batch(texts)
        logits = self.model(input_ids, attention_mask=attention_mask).logits.float()
        config = self.model.config
        if config.problem_type == "regression" or config.num_labels == 1:
            return [{"score": float(v)} for v in logits[:, 0]]
        multi_label = config.problem_type == "multi_label_classification"
        probabilities = (torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)).numpy()
        labels = self.labels
        return [
            {"label": labels[int(row.argmax())], "score": float(row.max()),
             "scores": {label: float(p) for label, p in zip(labels, row, strict=True)}}
            for row in probabilities
        ]

    @torch.inference_mode()
    def fill_mask(self, items: list[tuple[str, int]]) -> list[list[list[dict[str, Any]]]]:
        """For each (text, top_k): per [MASK] in the text, the top_k candidates {"token", "id", "score"}."""
        sequences, input_ids, attention_mask = self._batch([text for text, _ in items])
        hidden, unpadding = self.model.albert.encode(input_ids, attention_mask)
        flat_hidden = hidden.reshape(-1, hidden.shape[-1])
        flat_ids = torch.from_numpy(np.concatenate(sequences))  # packed row order = real tokens, row-major
        positions = (flat_ids == self.tokenizer.mask_token_id).nonzero().squeeze(1)
        logits = self.model.predictions(flat_hidden.index_select(0, positions)).float()
        logits[:, self.tokenizer.all_special_ids] = -float("inf")  # a mask is never filled with [CLS], <pad>, ...
        top_k = max(k for _, k in items)
        scores, ids = torch.topk(torch.softmax(logits, dim=-1), min(top_k, logits.shape[-1]), dim=-1)
        masks_per_text = np.fromiter(((s == self.tokenizer.mask_token_id).sum() for s in sequences), dtype=np.int64)
        results, row = [], 0
        for (_, k), n_masks in zip(items, masks_per_text, strict=True):
            per_mask = []
            for mask_scores, mask_ids in zip(scores[row:row + n_masks, :k], ids[row:row + n_masks, :k], strict=True):
                tokens = self.tokenizer.convert_ids_to_tokens(mask_ids.tolist())
                per_mask.append([
                    {"token": token.lstrip("▁") or token, "id": int(i), "score": float(s)}
                    for token, i, s in zip(tokens, mask_ids, mask_scores, strict=True)
                ])
            results.append(per_mask)
            row += n_masks
        return results

    @torch.inference_mode()
    def ner(self, texts: list[str]) -> list[dict[str, Any]]:
        """{"tokens": [{"token", "label", "score"}], "entities": [{"type", "text", "start", "end", "char_start",
        "char_end"}]} per text.

        start/end index the tokens (end exclusive; [CLS] and [SEP] are left out), char_start/char_end the text,
        and an entity's text is text[char_start:char_end]. A text longer than the model's max_length runs as
        overlapping windows, each token labeled by its most central window.
        """
        tok = self.tokenizer
        encoded = tok.encode_with_offsets(texts)
        pieces = [np.asarray(ids, dtype=np.int64) for ids, _ in encoded]
        size = self.encoder.max_length - 2
        spans = [(i, first, end) for i, ids in enumerate(pieces)
                 for first, end in word_windows(np.arange(len(ids)), np.arange(1, len(ids) + 1), size)]
        windows: list[list[tuple[int, np.ndarray]]] = [[] for _ in texts]
        for start in range(0, len(spans), NER_WINDOWS_PER_PASS):
            chunk = spans[start : start + NER_WINDOWS_PER_PASS]
            sequences = [np.array([tok.cls_token_id, *pieces[i][a:b], tok.sep_token_id]) for i, a, b in chunk]
            input_ids, attention_mask = pad_batch(sequences, tok.pad_token_id)
            logits = self.model(input_ids, attention_mask=attention_mask).logits.float()
            probabilities = torch.softmax(logits, dim=-1).numpy()
            for row, (i, a, b) in enumerate(chunk):
                windows[i].append((a, probabilities[row, 1 : 1 + b - a]))
        labels = np.array(self.labels, dtype=object)
        results = []
        for text, ids, (_, offsets), text_windows in zip(texts, pieces, encoded, windows, strict=True):
            probs = most_central(len(ids), text_windows, fill=0.0)
            tags = labels[probs.argmax(axis=-1)].tolist()
            tokens = [
                {"token": token, "label": tag, "score": float(score)}
                for token, tag, score in zip(tok.convert_ids_to_tokens(ids.tolist()), tags, probs.max(axis=-1).tolist(),
                                             strict=True)
            ]
            entities = []
            for kind, start, end in entity_spans(tags):
                char_start, char_end = offsets[start][0], offsets[end - 1][1]
                entities.append({"type": kind, "text": text[char_start:char_end], "start": start, "end": end,
                                 "char_start": char_start, "char_end": char_end})
            results.append({"tokens": tokens, "entities": entities})
        return results

    @torch.inference_mode()
    def answer(self, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """For each (question, context): {"answer", "start", "end", "score"}, the best span of the context
        (context[start:end]); "" with start = end = -1 when a SQuAD 2.0 model finds no answer. Long contexts run
        as overlapping windows, with the settings the model was fine-tuned with."""
        stored = self.info.get("task_spec")
        length = self.encoder.max_length
        spec = TaskSpec.from_dict(stored) if stored else TaskSpec(
            "qa", max_seq_length=length, max_query_length=min(64, length // 2), doc_stride=min(128, length // 4))
        examples = [QaExample(str(i), question, context) for i, (question, context) in enumerate(items)]
        features = featurize_qa(spec, self.tokenizer, examples, show_progress=False)
        outputs = run_features(self.model, features, batch_size=QA_WINDOWS_PER_PASS, pad_id=self.tokenizer.pad_token_id)
        spans = qa_best_spans(features, [o["start_logits"] for o in outputs], [o["end_logits"] for o in outputs],
                              version_2=spec.version_2)
        return [{"answer": spans[ex.id].text, "start": spans[ex.id].start, "end": spans[ex.id].end,
                 "score": spans[ex.id].score if np.isfinite(spans[ex.id].score) else None} for ex in examples]
