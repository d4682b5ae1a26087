"""What a model folder can answer: classify, embed, fill-mask, NER, QA, each as a batch function on inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.inference.embed import Encoder, pad_batch
from albertkit.inference.predictor import Predictor, architecture_of, folder_spec
from albertkit.modeling.folder import read_model_info
from albertkit.runtime.device import autocast
from albertkit.tasks.base import label_names
from albertkit.tokenization.loading import tokenizer_summary

TASKS = ("classify", "embed", "fill-mask", "ner", "qa")
PREDICT_BATCH = 32  # features (QA and long NER texts: windows) per forward pass of a task head


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
        if self.architecture in ("AlbertForMaskedLM", "AlbertForPreTraining") and encoder_layers:
            functions["fill-mask"] = self.fill_mask
        # A task head answers through the Predictor, as `albertkit predict` does, at its task's endpoint.
        spec = folder_spec(model_dir, self.model)
        self.predictor = None if spec is None else Predictor.from_model(self.model, self.tokenizer, spec,
                                                                        PREDICT_BATCH)
        if self.predictor is not None:
            endpoint = self.predictor.task.endpoint
            functions[endpoint] = {"classify": self.classify, "ner": self.ner, "qa": self.answer}[endpoint]
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
        return architecture_of(self.model)

    @property
    def tasks(self) -> list[str]:
        return [task for task in TASKS if task in self.functions]

    @property
    def labels(self) -> list[str]:
        """Label names of a classification or NER head, by id."""
        return self.predictor.spec.labels if self.predictor is not None else label_names(self.model.config)

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

    def classify(self, items: list[Any]) -> list[dict[str, Any]]:
        """{"label", "score", "scores": {label: probability}} per text (or (text, pair)); multi-label heads add
        "labels" (every label at probability 0.5 or more); regression heads give {"score"}. The numbers are
        `albertkit predict`'s: the same Predictor makes them."""
        results = []
        for record in self.predictor.predict_inputs(items):
            if "value" in record:
                results.append({"score": record["value"]})
                continue
            probabilities = record["probabilities"]
            best = max(probabilities, key=probabilities.__getitem__)
            result = {"label": record.get("label", best), "score": probabilities[best], "scores": probabilities}
            results.append({**result, "labels": record["labels"]} if "labels" in record else result)
        return results

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

    def ner(self, texts: list[str]) -> list[dict[str, Any]]:
        """{"tokens": [{"token", "label", "score"}], "entities": [{"type", "text", "start", "end", "char_start",
        "char_end"}]} per text: the tokens are the words the model was fine-tuned to tag (whitespace-separated, or
        characters for character-level NER), start/end index them (end exclusive), char_start/char_end the text.
        A text longer than max_seq_length runs as overlapping windows of whole words, as `albertkit predict` does."""
        examples = self.predictor.examples(texts)
        results = []
        for example, record in zip(examples, self.predictor.predict(examples), strict=True):
            tokens = [{"token": word, "label": tag, "score": score}
                      for word, tag, score in zip(example.words, record["tags"], record["scores"], strict=True)]
            entities = [{"type": e["type"], "text": e["text"], "start": e["words"][0], "end": e["words"][1],
                         "char_start": e["start"], "char_end": e["end"]} for e in record["entities"]]
            results.append({"tokens": tokens, "entities": entities})
        return results

    def answer(self, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """For each (question, context): {"answer", "start", "end", "score"}, the best span of the context
        (context[start:end]); "" with start = end = -1 when a SQuAD 2.0 model finds no answer. Long contexts run
        as overlapping windows, with the settings the model was fine-tuned with."""
        return [{key: record[key] for key in ("answer", "start", "end", "score")}
                for record in self.predictor.predict_inputs(items)]
