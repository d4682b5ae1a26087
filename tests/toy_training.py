"""A synthetic task for the training loop: sequences labeled by whether token 7 occurs, with injectable faults."""

import math

import torch

from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.model import AlbertForSequenceClassification


class Crash(Exception):
    pass


class ToyTask:
    """Sequences whose label is whether token 7 occurs; deterministic batches per (epoch, step)."""

    metric_name = "accuracy"
    greater_is_better = True

    def __init__(self, crash_at_step=None, nan_steps=()):
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 20, (64, 12), generator=gen)
        self.mask = torch.ones_like(self.ids)
        self.mask[::3, 8:] = 0
        self.labels = (self.ids == 7).any(1).long()
        self.crash_at_step, self.nan_steps, self.calls = crash_at_step, set(nan_steps), 0

    def steps_per_epoch(self, batch_size):
        return 64 // batch_size

    def micro_batches(self, batch_size, epoch, step, rank, world_size, micro_batch_size):
        self.calls += 1
        if self.crash_at_step is not None and self.calls == self.crash_at_step:
            raise Crash()
        order = torch.randperm(64, generator=torch.Generator().manual_seed(epoch))[step * batch_size:][:batch_size]
        batch = {"input_ids": self.ids[order], "attention_mask": self.mask[order], "labels": self.labels[order]}
        return [{k: v[i : i + micro_batch_size] for k, v in batch.items()} for i in range(0, batch_size, micro_batch_size)]

    def count_items(self, batch):
        return None

    def loss(self, model, batch, num_items):
        out = model(**batch)
        if self.calls in self.nan_steps:
            out.loss = out.loss * math.nan
        return out

    def evaluate(self, model):
        logits = model(input_ids=self.ids, attention_mask=self.mask).logits
        return {"accuracy": float((logits.argmax(-1) == self.labels).float().mean())}

    def save_model(self, model, directory, summary):
        model.save_pretrained(directory)


def new_model():
    torch.manual_seed(0)
    config = AlbertConfig(vocab_size=20, embedding_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=16, classifier_dropout_prob=0.1)
    return AlbertForSequenceClassification(config)


CONFIG = dict(max_steps=12, batch_size=16, micro_batch_size=8, learning_rate=1e-2, eval_every=4, save_every=3,
              save_every_minutes=None, log_every=2, keep_last=3, seed=0)
