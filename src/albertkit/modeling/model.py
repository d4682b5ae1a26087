"""ALBERT in plain PyTorch: factorized embeddings, one shared encoder, and the task heads.

Module and parameter names equal those of `transformers`' ALBERT, so state dicts load both ways.
Two things differ from a naive port, both for speed and both exact:
- padded batches run "unpadded": the linear layers see only the real tokens, attention alone goes
  back to the padded (batch, length) shape;
- with MLM labels, the vocabulary projection runs only at the masked positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from albertkit.modeling.activations import ACTIVATIONS
from albertkit.modeling.config import AlbertConfig
from albertkit.modeling.weights import load_weights_and_config, save_weights_and_config

IGNORE_INDEX = -100


@dataclass
class AlbertOutput:
    """What every ALBERT model returns; fields a head does not produce stay None."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None


class Unpadding:
    """Where the real tokens of a padded batch are, to pack (B, L, ...) into (N, ...) and back."""

    def __init__(self, attention_mask: torch.Tensor):
        self.batch, self.length = attention_mask.shape
        self.indices = attention_mask.reshape(-1).nonzero().squeeze(1)
        self.lengths = attention_mask.sum(dim=1)
        # Attention mask for SDPA: True where a query may attend to the key.
        self.key_mask = attention_mask.bool()[:, None, None, :]

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        return padded.reshape(self.batch * self.length, *padded.shape[2:]).index_select(0, self.indices)

    @property
    def first_rows(self) -> torch.Tensor:
        """Rows of the packed tokens that hold each sequence's first token ([CLS])."""
        return torch.cumsum(self.lengths, 0) - self.lengths

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        padded = packed.new_zeros(self.batch * self.length, *packed.shape[1:])
        padded.index_copy_(0, self.indices, packed)
        return padded.reshape(self.batch, self.length, *packed.shape[1:])


class AlbertEmbeddings(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        embeddings = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
        )
        return self.dropout(self.LayerNorm(embeddings))


class AlbertAttention(nn.Module):
    """Self-attention; heads listed in `pruned_heads` (original indices, as transformers 4 keeps them) are absent:
    the projections hold only the kept heads' rows and columns."""

    def __init__(self, config: AlbertConfig, pruned_heads: list[int] = ()):
        super().__init__()
        self.pruned_heads = sorted(set(pruned_heads))
        self.num_heads = config.num_attention_heads - len(self.pruned_heads)
        self.head_size = config.hidden_size // config.num_attention_heads
        self.dropout_p = config.attention_probs_dropout_prob
        all_head_size = self.num_heads * self.head_size
        self.query = nn.Linear(config.hidden_size, all_head_size)
        self.key = nn.Linear(config.hidden_size, all_head_size)
        self.value = nn.Linear(config.hidden_size, all_head_size)
        self.dense = nn.Linear(all_head_size, config.hidden_size)
        self.output_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, unpadding: Unpadding | None) -> torch.Tensor:
        """`hidden` is (B, L, H), or (N, H) packed real tokens when `unpadding` is given."""
        q, k, v = self.query(hidden), self.key(hidden), self.value(hidden)
        if unpadding is not None:
            q, k, v = unpadding.unpack(q), unpadding.unpack(k), unpadding.unpack(v)
        batch, length, _ = q.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads(q), heads(k), heads(v),
            attn_mask=None if unpadding is None else unpadding.key_mask,
            dropout_p=self.dropout_p if self.training else 0.0,
        )
        context = context.transpose(1, 2).reshape(batch, length, -1)
        if unpadding is not None:
            context = unpadding.pack(context)
        return self.LayerNorm(hidden + self.output_dropout(self.dense(context)))


class AlbertLayer(nn.Module):
    def __init__(self, config: AlbertConfig, pruned_heads: list[int] = ()):
        super().__init__()
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = AlbertAttention(config, pruned_heads)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, unpadding: Unpadding | None) -> torch.Tensor:
        attention_output = self.attention(hidden, unpadding)
        ffn_output = self.ffn_output(self.activation(self.ffn(attention_output)))
        return self.full_layer_layer_norm(self.dropout(ffn_output) + attention_output)


class AlbertLayerGroup(nn.Module):
    def __init__(self, config: AlbertConfig, group: int = 0):
        super().__init__()
        pruned = config.pruned_heads or {}
        # transformers numbers the layers of all groups in a row: group * inner_group_num + inner index.
        self.albert_layers = nn.ModuleList([
            AlbertLayer(config, pruned.get(group * config.inner_group_num + inner, []))
            for inner in range(config.inner_group_num)
        ])

    def forward(self, hidden: torch.Tensor, unpadding: Unpadding | None) -> torch.Tensor:
        for layer in self.albert_layers:
            hidden = layer(hidden, unpadding)
        return hidden


class AlbertTransformer(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList(
            [AlbertLayerGroup(config, group) for group in range(config.num_hidden_groups)]
        )
        self.gradient_checkpointing = False

    def forward(self, hidden: torch.Tensor, unpadding: Unpadding | None) -> torch.Tensor:
        hidden = self.embedding_hidden_mapping_in(hidden)
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for group in self.config.layer_groups():
            layer_group = self.albert_layer_groups[group]
            if recompute:  # keep only this application's input; its activations are recomputed in backward
                hidden = checkpoint(layer_group, hidden, unpadding, use_reentrant=False)
            else:
                hidden = layer_group(hidden, unpadding)
        return hidden


def set_gradient_checkpointing(model: nn.Module, enabled: bool = True) -> int:
    """Recompute each application of the shared layer group in the backward pass instead of keeping its
    activations (in every ALBERT encoder inside `model`, wrapped or not); returns how many encoders were set.

    Activation memory falls from one set per layer application to one layer's plus the inputs of each
    application, for about one more forward pass of compute. Dropout masks are replayed: gradients are unchanged.
    """
    encoders = [module for module in model.modules() if isinstance(module, AlbertTransformer)]
    for encoder in encoders:
        encoder.gradient_checkpointing = enabled
    return len(encoders)


class AlbertPreTrainedModel(nn.Module):
    """Initialisation and the Hugging Face folder format, shared by every ALBERT model."""

    base_model_prefix = "albert"
    # Parameters that are views of others; HF omits them from saved files.
    tied_weights: dict[str, str] = {}

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config

    def init_weights(self) -> None:
        """Initialise as transformers does: N(0, initializer_range) weights, zero biases, unit LayerNorm."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
                if module.padding_idx is not None:
                    module.weight.data[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, AlbertMLMHead):
                nn.init.zeros_(module.bias)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Make each tied parameter the very same tensor as its source."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        """Distinct parameters (tied ones counted once)."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    def save_pretrained(self, directory: str | Path) -> None:
        """Write `config.json` and `model.safetensors` that transformers loads (no missing or unexpected keys)."""
        save_weights_and_config(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **config_overrides: Any) -> AlbertPreTrainedModel:
        """Load an HF-format ALBERT folder (safetensors or pytorch_model.bin read with weights_only=True)."""
        return load_weights_and_config(cls, directory, **config_overrides)


def _position_ids(input_ids: torch.Tensor) -> torch.Tensor:
    return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)


class AlbertModel(AlbertPreTrainedModel):
    """The encoder: embeddings, the shared transformer, and the tanh pooler on [CLS]."""

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.init_weights()

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Unpadding | None]:
        """Hidden states of the real tokens: (N, H) packed with its `Unpadding`, or (B, L, H) with None."""
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings {self.config.max_position_embeddings}"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = _position_ids(input_ids)
        unpadding = None
        if attention_mask is not None and not bool(attention_mask.all()):
            unpadding = Unpadding(attention_mask)
            input_ids, token_type_ids, position_ids = (
                unpadding.pack(input_ids), unpadding.pack(token_type_ids), unpadding.pack(position_ids)
            )
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids, position_ids), unpadding)
        return hidden, unpadding

    @staticmethod
    def first_tokens(hidden: torch.Tensor, unpadding: Unpadding | None) -> torch.Tensor:
        """(B, H): the hidden state of each sequence's first token ([CLS]), from what `encode` returned."""
        return hidden[:, 0] if unpadding is None else hidden.index_select(0, unpadding.first_rows)

    def pool(self, first_tokens: torch.Tensor) -> torch.Tensor:
        """The tanh pooler on [CLS] states (what SOP and the classifiers read)."""
        return torch.tanh(self.pooler(first_tokens))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> AlbertOutput:
        hidden, unpadding = self.encode(input_ids, attention_mask, token_type_ids, position_ids)
        sequence_output = hidden if unpadding is None else unpadding.unpack(hidden)
        pooled = self.pool(self.first_tokens(hidden, unpadding)) if self.pooler is not None else None
        return AlbertOutput(last_hidden_state=sequence_output, pooler_output=pooled)


class AlbertMLMHead(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden))))


class AlbertSOPHead(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled_output))


class _MaskedLMMixin:
    """The MLM head's weight tying (unless the config says `tie_word_embeddings: false`, as transformers allows)
    and its loss, computed at the masked positions only."""

    @property
    def tied_weights(self) -> dict[str, str]:
        if not self.config.tie_word_embeddings:
            return {}
        return {
            "predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
            "predictions.decoder.bias": "predictions.bias",
        }

    def tie_weights(self) -> None:
        if self.config.tie_word_embeddings:
            self.predictions.decoder.weight = self.albert.embeddings.word_embeddings.weight
            self.predictions.decoder.bias = self.predictions.bias

    def masked_lm(
        self,
        hidden: torch.Tensor,
        unpadding: Unpadding | None,
        labels: torch.Tensor | None,
        sparse: bool,
        num_items_in_batch: int | torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, loss). With labels and `sparse`, logits are (num_masked, V), in row-major order of the mask."""
        if labels is None or not sparse:
            dense_hidden = hidden if unpadding is None else unpadding.unpack(hidden)
            logits = self.predictions(dense_hidden)
            if labels is None:
                return logits, None
            flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        else:
            flat_labels = labels.reshape(-1) if unpadding is None else unpadding.pack(labels)
            flat_hidden = hidden.reshape(-1, hidden.shape[-1])
            positions = (flat_labels != IGNORE_INDEX).nonzero().squeeze(1)
            flat_logits = logits = self.predictions(flat_hidden.index_select(0, positions))
            flat_labels = flat_labels.index_select(0, positions)
        if num_items_in_batch is None:
            loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
        else:
            loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum") / num_items_in_batch
        return logits, loss


class AlbertForPreTraining(_MaskedLMMixin, AlbertPreTrainedModel):
    """ALBERT with the pretraining heads: masked LM (tied to the embeddings) and sentence-order prediction."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.predictions = AlbertMLMHead(config)
        self.sop_classifier = AlbertSOPHead(config)
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sentence_order_label: torch.Tensor | None = None,
        sparse_mlm: bool = True,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> AlbertOutput:
        """`num_items_in_batch`: divide the summed MLM loss by this (the masked tokens of the whole step)."""
        hidden, unpadding = self.albert.encode(input_ids, attention_mask, token_type_ids, position_ids)
        sop_logits = self.sop_classifier(self.albert.pool(self.albert.first_tokens(hidden, unpadding)))
        logits, mlm_loss = self.masked_lm(hidden, unpadding, labels, sparse_mlm, num_items_in_batch)
        sop_loss = None if sentence_order_label is None else F.cross_entropy(sop_logits, sentence_order_label.reshape(-1))
        loss = None
        if mlm_loss is not None and sop_loss is not None:
            loss = mlm_loss + sop_loss
        return AlbertOutput(
            loss=loss, prediction_logits=logits, sop_logits=sop_logits, mlm_loss=mlm_loss, sop_loss=sop_loss
        )


class AlbertForMaskedLM(_MaskedLMMixin, AlbertPreTrainedModel):
    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.predictions = AlbertMLMHead(config)
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sparse_mlm: bool = True,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> AlbertOutput:
        hidden, unpadding = self.albert.encode(input_ids, attention_mask, token_type_ids, position_ids)
        logits, loss = self.masked_lm(hidden, unpadding, labels, sparse_mlm, num_items_in_batch)
        return AlbertOutput(loss=loss, logits=logits, mlm_loss=loss)


class AlbertForSequenceClassification(AlbertPreTrainedModel):
    """Classification (cross-entropy) or regression (one output, MSE) on the pooled [CLS]."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> AlbertOutput:
        hidden, unpadding = self.albert.encode(input_ids, attention_mask, token_type_ids, position_ids)
        pooled = self.albert.pool(self.albert.first_tokens(hidden, unpadding))
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.config.problem_type == "regression" or self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).reshape(-1))
            elif self.config.problem_type == "multi_label_classification":
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits, labels.reshape(-1))
        return AlbertOutput(loss=loss, logits=logits, pooler_output=pooled)


class AlbertForTokenClassification(AlbertPreTrainedModel):
    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> AlbertOutput:
        hidden, unpadding = self.albert.encode(input_ids, attention_mask, token_type_ids, position_ids)
        packed_logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            flat_labels = labels.reshape(-1) if unpadding is None else unpadding.pack(labels)
            loss = F.cross_entropy(packed_logits.reshape(-1, self.num_labels), flat_labels, ignore_index=IGNORE_INDEX)
        logits = packed_logits if unpadding is None else unpadding.unpack(packed_logits)
        return AlbertOutput(loss=loss, logits=logits)


class AlbertForQuestionAnswering(AlbertPreTrainedModel):
    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
    ) -> AlbertOutput:
        hidden, unpadding = self.albert.encode(input_ids, attention_mask, token_type_ids, position_ids)
        logits = self.qa_outputs(hidden)
        if unpadding is not None:
            # Padding gets the lowest logit: never an answer boundary.
            logits = unpadding.unpack(logits).masked_fill(~attention_mask.bool()[..., None], torch.finfo(logits.dtype).min)
        start_logits, end_logits = logits[..., 0].contiguous(), logits[..., 1].contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]
            start = start_positions.reshape(-1).clamp(0, ignored)
            end = end_positions.reshape(-1).clamp(0, ignored)
            loss = (
                F.cross_entropy(start_logits, start, ignore_index=ignored)
                + F.cross_entropy(end_logits, end, ignore_index=ignored)
            ) / 2
        return AlbertOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


HEADS: dict[str, type[AlbertPreTrainedModel]] = {
    cls.__name__: cls
    for cls in (
        AlbertModel,
        AlbertForPreTraining,
        AlbertForMaskedLM,
        AlbertForSequenceClassification,
        AlbertForTokenClassification,
        AlbertForQuestionAnswering,
    )
}
