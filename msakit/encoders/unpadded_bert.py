"""A faster forward for BERT encoders that need only the [CLS] output, same weights, same math.

A batch padded to its longest transcript still spends most of its work on padding: on MOSI
the longest of 16 transcripts is ~2.4x the mean. Here every linear layer (Q/K/V, attention
output, the feed-forward block) runs on the real tokens only, packed into one ``(N, H)``
matrix; only the attention product itself is laid out padded per sequence. And since Self-MM
reads only the first token's last hidden state, the last layer computes the query, attention
output and feed-forward for that one row per sequence (keys and values still come from every
token). The result equals the stock forward's ``last_hidden_state[:, 0]`` up to float
rounding (tested), and trains the same parameters. ``bert_mean_unpadded`` runs every layer in
full and returns the mean of the real tokens' last states instead (the utterance vector of
``data.context_encoder=lstm``).

Used only for plain BERT encoders (``model_type == "bert"``, absolute positions, no
cross-attention) with right-padded batches; anything else takes the stock forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def supports_unpadded(backbone: nn.Module) -> bool:
    config = backbone.config
    return (
        config.model_type == "bert"
        and not getattr(config, "is_decoder", False)
        and not getattr(config, "add_cross_attention", False)
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and hasattr(backbone, "embeddings")
        and hasattr(backbone, "encoder")
    )


def _split_heads(x: torch.Tensor, batch: int, length: int, heads: int) -> torch.Tensor:
    return x.view(batch, length, heads, -1).transpose(1, 2)


def bert_cls_unpadded(backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``last_hidden_state[:, 0]`` of a BERT ``backbone``, computed on real tokens only."""
    return _packed_forward(backbone, input_ids, attention_mask, mean=False)


def bert_mean_unpadded(backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``last_hidden_state`` over each sequence's real tokens ``(B, H)`` (the
    sentence vector the utterance-level context encoder reads), computed on real tokens only."""
    return _packed_forward(backbone, input_ids, attention_mask, mean=True)


def _packed_forward(backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, mean: bool) -> torch.Tensor:
    batch, length = input_ids.shape
    embeddings = backbone.embeddings(input_ids=input_ids)  # (B, L, H); lookups are cheap
    hidden_size = embeddings.shape[-1]
    valid = attention_mask.bool()
    rows = valid.reshape(-1).nonzero().squeeze(1)  # packed token -> row of the (B*L) grid
    cls_rows = (rows % length == 0).nonzero().squeeze(1)  # packed index of each [CLS]
    key_mask = valid[:, None, None, :]  # (B, 1, 1, L): attend to real tokens only
    hidden = embeddings.reshape(batch * length, hidden_size)[rows]  # (N, H)

    def padded(x: torch.Tensor) -> torch.Tensor:
        grid = x.new_zeros(batch * length, x.shape[-1]).index_copy(0, rows, x)
        return grid.view(batch, length, -1)

    layers = backbone.encoder.layer
    for i, layer in enumerate(layers):
        attention = layer.attention.self
        heads = attention.num_attention_heads
        keys = _split_heads(padded(attention.key(hidden)), batch, length, heads)
        values = _split_heads(padded(attention.value(hidden)), batch, length, heads)
        dropout = attention.dropout.p if attention.training else 0.0
        if i < len(layers) - 1 or mean:  # the mean reads every token's last state
            queries = _split_heads(padded(attention.query(hidden)), batch, length, heads)
            context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=key_mask, dropout_p=dropout, scale=attention.scaling)
            context = context.transpose(1, 2).reshape(batch * length, hidden_size)[rows]
            residual = hidden
        else:  # last layer: only the [CLS] rows are needed downstream
            residual = hidden[cls_rows]  # (B, H)
            queries = attention.query(residual).view(batch, 1, heads, -1).transpose(1, 2)
            context = F.scaled_dot_product_attention(queries, keys, values, attn_mask=key_mask, dropout_p=dropout, scale=attention.scaling)
            context = context.transpose(1, 2).reshape(batch, hidden_size)
        attended = layer.attention.output(context, residual)  # dense, dropout, LayerNorm(+residual)
        hidden = layer.output(layer.intermediate(attended), attended)  # feed-forward block
    if not mean:
        return hidden
    counts = valid.sum(dim=1)
    owner = rows // length  # the sequence each packed token belongs to
    sums = hidden.new_zeros(batch, hidden_size).index_add(0, owner, hidden)
    return sums / counts.clamp(min=1)[:, None].to(hidden.dtype)
