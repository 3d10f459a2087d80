"""Batches are cut to their own longest item: text re-tokenized from raw_text, frames trimmed."""

from __future__ import annotations

import numpy as np

from msakit.data.batching import BatchBuilder
from msakit.data.mmsa import read_mmsa_pickle
from msakit.encoders.text import load_tokenizer


def test_batches_are_padded_to_their_own_longest_item(small_synthetic, tiny_bert_dir):
    tokenizer = load_tokenizer(tiny_bert_dir)
    split = read_mmsa_pickle(small_synthetic).splits["train"]
    builder = BatchBuilder(split, ("t", "a", "v"), tokenizer)
    own_lengths = [len(ids) for ids in tokenizer(list(split.raw_text))["input_ids"]]

    # Two short items: the batch is as wide as the longer of them, not as the split's longest.
    rows = np.argsort(own_lengths)[:2]
    batch = builder.make_batch(rows)
    assert batch.text_ids.shape[1] == max(own_lengths[i] for i in rows) < max(own_lengths)
    assert batch.text_mask.sum(1).tolist() == [own_lengths[i] for i in rows]
    # Ids come from the model's tokenizer applied to raw_text, whatever text_bert holds.
    first = tokenizer(split.raw_text[rows[0]])["input_ids"]
    assert batch.text_ids[0, : len(first)].tolist() == first
    assert (batch.text_ids[0, len(first):] == tokenizer.pad_token_id).all()

    for name, lengths in (("audio", split.audio_lengths), ("vision", split.vision_lengths)):
        rows_by_length = np.argsort(lengths)[:3]
        trimmed = getattr(builder.make_batch(rows_by_length), name)
        assert trimmed.shape[1] == lengths[rows_by_length].max() < getattr(split, name).shape[1], name
        assert np.array_equal(trimmed.numpy(), getattr(split, name)[rows_by_length, : trimmed.shape[1]].astype(np.float32))


def test_the_shuffle_order_depends_only_on_seed_and_epoch(small_synthetic):
    split = read_mmsa_pickle(small_synthetic).splits["train"]
    builder = BatchBuilder(split, ("a",))
    first = [b.index.tolist() for b in builder.batches(16, shuffle=True, seed=7, epoch=3)]
    again = [b.index.tolist() for b in builder.batches(16, shuffle=True, seed=7, epoch=3)]
    other_epoch = [b.index.tolist() for b in builder.batches(16, shuffle=True, seed=7, epoch=4)]
    assert first == again and first != other_epoch
    assert sorted(i for b in first for i in b) == list(range(len(split)))
