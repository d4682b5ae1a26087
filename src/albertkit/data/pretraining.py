"""The dataset the pretraining loop reads: batches of MLM + SOP examples from token shards."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albertkit.data.masking import assemble_pairs, mask_ngrams
from albertkit.data.shards import open_shards
from albertkit.data.sop import MIN_SEQ_LENGTH, build_sop_examples
from albertkit.errors import UserError

_EXAMPLES_STREAM, _MASK_STREAM = 0, 1


class PretrainingData:
    """Batches of MLM + SOP examples from one split of a prepared data folder.

    Each epoch builds its own examples (target lengths, split points, swaps) and order from (seed, epoch);
    each global batch is masked as a whole from (seed, epoch, index), so a rank's rows do not depend on the
    world size, and the same arguments always give the same tensors. `mask_all` (for evaluation) shows every
    masked token as [MASK] instead of BERT's 80/10/10 replacement.
    """

    def __init__(
        self,
        data_dir: str | Path | list[str | Path],
        split: str = "train",
        *,
        max_seq_length: int | None = None,
        short_seq_prob: float = 0.1,
        masked_lm_prob: float = 0.15,
        max_predictions_per_seq: int | None = None,
        max_ngram: int = 3,
        seed: int = 0,
        mask_all: bool = False,
    ):
        self.shards = open_shards(data_dir, split)
        index = self.shards.index
        self.max_seq_length = max_seq_length or int(index["max_seq_length"])
        if self.max_seq_length < MIN_SEQ_LENGTH:
            raise UserError(f"max_seq_length must be at least {MIN_SEQ_LENGTH}, not {self.max_seq_length}")
        if not 0 < masked_lm_prob < 1 or not 0 <= short_seq_prob <= 1 or max_ngram < 1:
            raise UserError(
                "masked_lm_prob must be in (0, 1), short_seq_prob in [0, 1] and max_ngram at least 1"
            )
        self.short_seq_prob = short_seq_prob
        self.masked_lm_prob = masked_lm_prob
        # ALBERT's 20 predictions at length 128 and 77 at 512.
        self.max_predictions_per_seq = max_predictions_per_seq or math.ceil(
            masked_lm_prob * self.max_seq_length
        )
        self.max_ngram = max_ngram
        self.seed = seed
        self.mask_all = mask_all
        self.vocab_size = int(index["vocab_size"])
        special = index["special_token_ids"]
        self.pad_token_id, self.unk_token_id = special["pad"], special["unk"]
        self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            special["cls"],
            special["sep"],
            special["mask"],
        )
        self.replacement_ids = np.setdiff1d(np.arange(self.vocab_size), list(special.values()))
        self._epoch: tuple[int, np.ndarray] | None = None

    def examples(self, epoch: int) -> np.ndarray:
        """The epoch's examples in training order, (n, 5): a_start, a_length, b_start, b_length, label."""
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, _EXAMPLES_STREAM, epoch])
            examples = build_sop_examples(
                self.shards.sentence_offsets,
                self.shards.document_offsets,
                self.max_seq_length,
                self.short_seq_prob,
                rng,
            )
            self._epoch = (epoch, examples[rng.permutation(len(examples))])
        return self._epoch[1]

    def num_examples(self, epoch: int) -> int:
        return len(self.examples(epoch))

    def num_batches(self, global_batch_size: int, epoch: int) -> int:
        """Full global batches in the epoch (the last partial one is dropped)."""
        return self.num_examples(epoch) // global_batch_size

    def masked_pairs(
        self, examples: np.ndarray, rng: np.random.Generator, max_predictions_per_seq: int | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        """Examples assembled into rows and n-gram masked: (pairs, masked input_ids, labels, span_words)."""
        pairs = assemble_pairs(
            examples,
            self.shards.token_ids,
            self.shards.word_starts,
            cls_id=self.cls_token_id,
            sep_id=self.sep_token_id,
            pad_id=self.pad_token_id,
        )
        masked_ids, labels, span_words = mask_ngrams(
            pairs["input_ids"],
            pairs["maskable"],
            pairs["word_starts"],
            rng,
            mask_token_id=self.mask_token_id,
            replacement_ids=self.replacement_ids,
            masked_lm_prob=self.masked_lm_prob,
            max_predictions_per_seq=max_predictions_per_seq or self.max_predictions_per_seq,
            max_ngram=self.max_ngram,
            **({"mask_share": 1.0, "random_share": 0.0} if self.mask_all else {}),
        )
        return pairs, masked_ids, labels, span_words

    def batch(
        self, global_batch_size: int, epoch: int, index: int, rank: int = 0, world_size: int = 1
    ) -> dict[str, Any]:
        """Rows [rank*B/world_size, (rank+1)*B/world_size) of global batch `index`, padded to their longest row."""
        if global_batch_size % world_size:
            raise UserError(
                f"the batch size {global_batch_size} is not a multiple of the {world_size} processes"
            )
        if not 0 <= index < self.num_batches(global_batch_size, epoch):
            raise IndexError(
                f"batch {index} of epoch {epoch}: there are {self.num_batches(global_batch_size, epoch)}"
            )
        examples = self.examples(epoch)[index * global_batch_size : (index + 1) * global_batch_size]
        pairs, input_ids, labels, _ = self.masked_pairs(
            examples, np.random.default_rng([self.seed, _MASK_STREAM, epoch, index])
        )
        share = global_batch_size // world_size
        rows = slice(rank * share, (rank + 1) * share)
        width = int(pairs["attention_mask"][rows].sum(1).max())
        columns = {
            "input_ids": input_ids,
            "attention_mask": pairs["attention_mask"],
            "token_type_ids": pairs["token_type_ids"],
            "labels": labels,
        }
        out = {
            name: torch.from_numpy(np.ascontiguousarray(array[rows, :width]))
            for name, array in columns.items()
        }
        out["sentence_order_label"] = torch.from_numpy(np.ascontiguousarray(examples[rows, 4]))
        return out

