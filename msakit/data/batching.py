"""From a validated Split to model-ready batches.

Text is tokenized once, up front, with the model's own tokenizer (the ``text_bert`` ids in
MMSA files only fit bert-base). Each batch is padded to its own longest item: MOSI
transcripts average ~15 word pieces, so padding every batch to the file's 50 would triple
the text encoder's work. Audio and vision are trimmed to the batch's longest valid length.

The shuffle order of epoch ``n`` depends only on ``(seed, n)``, so a run resumed at epoch
``n`` sees exactly the batches an uninterrupted run would have seen.

Length buckets (``buckets=(m, batch_size, k)``, asked for by a model such as ``mmml``): the
shuffled order is cut into windows of ``k`` batches, each window sorted by modality ``m``'s
length (longest first) and cut into batches, and the window's batches shuffled; so a batch holds
clips of similar length and is padded little, and the order still depends only on ``(seed, n)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator

import numpy as np
import torch

from msakit.data.types import Split
from msakit.errors import ConfigError


@dataclass
class Batch:
    index: torch.Tensor  # (B,) position of each sample in its split (ULGM state is indexed by it)
    labels: dict[str, torch.Tensor]  # "m" and any human/planted unimodal labels
    text_ids: torch.Tensor | None = None  # (B, L) with L the batch's longest tokenization
    text_mask: torch.Tensor | None = None
    audio: torch.Tensor | None = None  # (B, T_a, D_a), T_a the batch's longest audio
    audio_lengths: torch.Tensor | None = None
    vision: torch.Tensor | None = None
    vision_lengths: torch.Tensor | None = None
    # Training batches under modality dropout: which samples were given each modality as absent
    # (bool (B,) per modality); objectives that pair modalities skip those samples.
    absent: dict[str, torch.Tensor] | None = None
    # data.context_encoder=lstm: each modality's window of utterances (msakit.data.context.windows):
    # "a"/"v": (B, W, D) utterance vectors; "t_ids"/"t_mask": (B, W, L) the window's transcripts;
    # "<m>_lengths"/"<m>_position": (B,) the window's length (0: the scored one's m is absent)
    # and the scored utterance's place in it. Read by msakit.encoders.context.
    context: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def pin_memory(self) -> "Batch":
        """Page-locked copies, so ``to(cuda, non_blocking=True)`` overlaps with compute."""
        pinned = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.pin_memory()
            elif isinstance(value, dict):
                value = {k: v.pin_memory() for k, v in value.items()}
            pinned[f.name] = value
        return Batch(**pinned)

    def to(self, device: torch.device | str) -> "Batch":
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=True)
            elif isinstance(value, dict):
                value = {k: v.to(device, non_blocking=True) for k, v in value.items()}
            moved[f.name] = value
        return Batch(**moved)


class BatchBuilder:
    """Holds one split, tokenized, and cuts it into batches for the chosen modalities."""

    def __init__(self, split: Split, modalities: tuple[str, ...], tokenizer=None, max_text_tokens: int = 128,
                 empty: dict[str, np.ndarray] | None = None, context=None, buckets: tuple[str, int, int] | None = None,
                 withheld: dict[str, np.ndarray] | None = None):
        """``empty[m]`` (bool over the split's rows, ``data.empty_as_absent``): samples whose
        ``m`` is all zeros; every batch marks them absent (their frames are already zero).
        ``withheld[m]`` (bool over the split's rows): samples that lack ``m`` where a trained model
        is used (a clip without audio, a robustness curve's missing modality); every batch gives
        them as training's modality dropout gave a withheld modality (``make_batch``'s
        ``absent``), context included: with ``data.context`` a withheld modality also gets no
        context from the neighbours, as in training, not the neighbours' context beside its zeros.
        ``context`` (a ``msakit.data.context.ContextSpec``): each transcript is tokenized with its
        neighbours of the same video in this split (``msakit.data.context.context_token_ids``),
        and audio/vision, where the spec names them, get the neighbours' mean utterance vector
        as extra columns on every valid frame (``msakit.data.context.frame_context``). With the
        spec's ``lstm`` encoder, transcripts are tokenized alone and each batch carries every
        row's window of utterances instead (``Batch.context``)."""
        missing = [m for m in modalities if m not in split.modalities]
        if missing:
            raise ConfigError(
                f"split {split.name!r} has no {missing} data (it has {list(split.modalities)}); "
                "choose modalities the data provides"
            )
        self.split = split
        self.modalities = modalities
        self.buckets = buckets  # (modality, batch size, batches per window): see the module docstring
        self.empty = {m: np.asarray(e, dtype=bool) for m, e in (empty or {}).items() if np.any(e)}
        self.withheld = {m: np.asarray(w, dtype=bool) for m, w in (withheld or {}).items() if m in modalities and np.any(w)}
        self.token_ids: list[list[int]] | None = None
        if "t" in modalities:
            if tokenizer is None:
                raise ConfigError("text modality requested but no tokenizer given")
            if context is not None and context.reads("t") and not context.windowed("t"):
                from msakit.data.context import context_token_ids

                plain = tokenizer(list(split.raw_text), add_special_tokens=False, truncation=True, max_length=max_text_tokens)["input_ids"]
                self.token_ids = context_token_ids(plain, context, split.ids, tokenizer, max_text_tokens)
            else:
                encoded = tokenizer(list(split.raw_text), truncation=True, max_length=max_text_tokens)
                self.token_ids = encoded["input_ids"]
            self.pad_id = int(tokenizer.pad_token_id or 0)
            self.empty_ids = tokenizer("", truncation=True, max_length=max_text_tokens)["input_ids"]  # absent text
        self.labels = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in split.labels.items()}
        self.frame_context: dict[str, np.ndarray] = {}
        self.window_vectors: dict[str, np.ndarray] = {}  # data.context_encoder=lstm: each row's utterance vector
        self.windows = None
        for m, key in (("a", "audio"), ("v", "vision")):
            if m in modalities and context is not None and context.windowed(m):
                from msakit.data.context import utterance_vectors

                self.window_vectors[m] = utterance_vectors(getattr(split, key), getattr(split, f"{key}_lengths"))[0].astype(np.float32)
            elif m in modalities and context is not None and context.reads(m):
                from msakit.data.context import frame_context

                self.frame_context[m] = frame_context(getattr(split, key), getattr(split, f"{key}_lengths"), split.ids, context)
        self.windowed = tuple(m for m in modalities if context is not None and context.windowed(m))
        if self.windowed:
            from msakit.data.context import windows

            self.windows = windows(split.ids, context)

    def __len__(self) -> int:
        return len(self.split)

    def order(self, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
        if not shuffle:
            return np.arange(len(self.split))
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.split))
        if not self.buckets:
            return order
        modality, size, per_window = self.buckets
        lengths = np.asarray(self.split.audio_lengths if modality == "a" else self.split.vision_lengths)
        out = []
        for start in range(0, len(order), size * per_window):
            window = order[start : start + size * per_window]
            window = window[np.argsort(-lengths[window], kind="stable")]
            batches = [window[i : i + size] for i in range(0, len(window), size)]
            out.extend(batches[i] for i in rng.permutation(len(batches)))
        return np.concatenate(out)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                modality_dropout: dict[str, float] | None = None) -> Iterator[Batch]:
        """``modality_dropout`` (``{"a": 0.3}``): per-sample absent modalities for this epoch,
        drawn from ``(seed, epoch)`` (see ``msakit.data.corruption``)."""
        order = self.order(shuffle, seed, epoch)
        absent = None
        if modality_dropout:
            from msakit.data.corruption import dropout_masks

            absent = dropout_masks(len(self.split), modality_dropout, seed, epoch)
        for start in range(0, len(order), batch_size):
            yield self.make_batch(order[start : start + batch_size], absent)

    def num_batches(self, batch_size: int) -> int:
        return (len(self.split) + batch_size - 1) // batch_size

    def make_batch(self, rows: np.ndarray, absent: dict[str, np.ndarray] | None = None) -> Batch:
        """``absent[m]`` (bool over the split's rows): rows given modality ``m`` as absent, by
        ``msakit.data.corruption.ABSENT_CONVENTION`` (empty transcript; zero frames)."""
        rows = np.asarray(rows, dtype=np.int64)
        absent = dict(absent or {})
        for m, w in self.withheld.items():
            absent[m] = w | absent[m] if m in absent else w
        index = torch.from_numpy(rows)
        batch = Batch(index=index, labels={k: v[index] for k, v in self.labels.items()})
        if self.token_ids is not None:
            seqs = [self.empty_ids if "t" in absent and absent["t"][i] else self.token_ids[i] for i in rows]
            width = max(len(s) for s in seqs)
            ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(seqs), width), dtype=np.int64)
            for r, s in enumerate(seqs):
                ids[r, : len(s)] = s
                mask[r, : len(s)] = 1
            batch.text_ids, batch.text_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        if "a" in self.modalities:
            batch.audio, batch.audio_lengths = self._frames(self.split.audio, self.split.audio_lengths, rows, absent.get("a"), self.frame_context.get("a"))
        if "v" in self.modalities:
            batch.vision, batch.vision_lengths = self._frames(self.split.vision, self.split.vision_lengths, rows, absent.get("v"), self.frame_context.get("v"))
        if self.windowed:
            batch.context = self._windows(rows, absent)
        marked = dict(absent)
        for m, e in self.empty.items():  # an empty sample is absent; its frames and length stay as they are
            marked[m] = e | marked[m] if m in marked else e
        if marked:
            batch.absent = {m: torch.from_numpy(np.asarray(a[rows], dtype=bool)) for m, a in marked.items()}
        return batch

    def _windows(self, rows: np.ndarray, absent: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """``Batch.context`` of ``rows``: each modality's window, cut to the batch's longest. A row
        whose modality is withheld (modality dropout) gets an empty window: its own utterance
        vector would give the withheld modality back."""
        members, lengths, positions = (w[rows] for w in self.windows)
        width = int(lengths.max())
        members = members[:, :width]
        valid = members >= 0
        out: dict[str, torch.Tensor] = {}
        for m in self.windowed:
            kept = lengths * ~np.asarray(absent[m][rows], dtype=bool) if m in absent else lengths
            out[f"{m}_lengths"] = torch.from_numpy(kept.astype(np.int64))
            out[f"{m}_position"] = torch.from_numpy(positions.astype(np.int64))
            if m == "t":
                seqs = [[self.token_ids[r] if ok else [] for r, ok in zip(row, ok_row)] for row, ok_row in zip(members, valid)]
                longest = max(1, max(len(x) for row in seqs for x in row))
                ids = np.full((len(rows), width, longest), self.pad_id, dtype=np.int64)
                mask = np.zeros((len(rows), width, longest), dtype=np.int64)
                for i, row in enumerate(seqs):
                    for j, x in enumerate(row):
                        ids[i, j, :len(x)], mask[i, j, :len(x)] = x, 1
                out["t_ids"], out["t_mask"] = torch.from_numpy(ids), torch.from_numpy(mask)
            else:
                vectors = self.window_vectors[m][np.where(valid, members, 0)] * valid[:, :, None]
                out[m] = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        return out

    @staticmethod
    def _frames(array: np.ndarray, lengths: np.ndarray, rows: np.ndarray, absent: np.ndarray | None = None,
                context: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``context`` (``(N, D)``, data.context): appended to every valid frame of each row."""
        lengths = np.asarray(lengths)
        batch_lengths = lengths[rows]
        if absent is not None and absent[rows].any():  # absent: all frames zero, length = the split's full width
            batch_lengths = np.where(absent[rows], array.shape[1], batch_lengths)
        longest = int(batch_lengths.max())
        frames = np.ascontiguousarray(array[rows, :longest], dtype=np.float32)
        if context is not None:
            valid = np.arange(longest)[None, :] < lengths[rows][:, None]
            frames = np.concatenate([frames, context[rows][:, None, :] * valid[:, :, None].astype(np.float32)], axis=2)
        if absent is not None:
            frames[absent[rows]] = 0.0  # a copy (fancy indexing above), never the split's array
        return torch.from_numpy(frames), torch.from_numpy(batch_lengths.astype(np.int64))
