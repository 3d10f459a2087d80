"""An utterance read with its neighbours: which rows of a split are the same video's, in order.

CMU-MOSI, CMU-MOSEI and CH-SIMS are monologue videos cut into utterances, and an utterance's
neighbours share its speaker, topic and baseline tone (bc-LSTM, Poria et al. 2017). A row's
video and position come from its id, ``<video_id>$_$<clip_id>`` as in the MMSA pickles, the raw
layout's ``label.csv`` (``msakit extract``) and a text table's ``video_id``/``clip_id`` columns.

``neighbours(ids, k, side)`` gives, for each row, the rows of the same video **in the same
split** before it (closest first) and after it (closest first), at most ``k`` each;
``side="past"`` gives none after it (causal use). Rows are ordered within a video by ``clip_id``
(numerically where every clip id of the video is a number, else in the order they appear).
Only ids enter here: labels never do, so no label can leak into a neighbour's context, and the
other splits are never looked at, so no neighbour comes from another split.

What each modality gets (``data.context_modalities``, default ``t``):

- text: the neighbours' transcripts, tokenized with the scored utterance in the tokenizer's pair
  form (``context_token_ids``);
- audio and vision: the mean of the neighbours' utterance vectors (each neighbour's frames
  averaged over its valid frames; neighbours with no such frames, i.e. all zeros, left out),
  appended as extra columns to every valid frame of the scored utterance (``frame_context``).
  Every model then reads it through its own audio/vision encoder (the feature width doubles);
  what a speaker's voice, room or camera adds to every clip is in the neighbours' mean too, so a
  model can read the scored utterance relative to its speaker.

``data.context_encoder=lstm`` reads the neighbours the way bc-LSTM does (Poria et al. 2017): each
utterance of the window (previous ones, the scored one, next ones, in video order) is one vector
(text: the mean of the model's text encoder's token states over that transcript alone;
audio/vision: the frames' mean), and a bidirectional LSTM over that sequence gives the scored
utterance a context vector
(``msakit.encoders.context``): for audio/vision it takes the neighbours' mean's place as the
extra columns; for text it is added to every state of the text encoder's output (through a layer
that starts at zero, so training starts from the model without context), and the transcript is
read alone. The windows come from ``windows``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from msakit.errors import ConfigError

SEPARATOR = "$_$"
SIDES = ("both", "past")
ENCODERS = ("join", "lstm")
MODALITIES = ("t", "a", "v")


def reads_any(context_modalities, modalities) -> bool:
    """Whether context on ``context_modalities`` reads any of ``modalities`` (a stage or run on
    fewer modalities turns ``data.context`` off where it reads none of them)."""
    return bool(set(parse_context_modalities(context_modalities)) & set(modalities))


def parse_context_modalities(value) -> tuple[str, ...]:
    """``"t"``, ``"t,a,v"``, ``"av"``... as a tuple in t, a, v order; one line if it is not."""
    if isinstance(value, (tuple, list)):
        value = ",".join(str(m) for m in value)
    letters = [m for m in str(value).replace(",", " ").replace("+", " ").split()] if isinstance(value, str) else []
    letters = [ch for part in letters for ch in part]
    if not letters or any(m not in MODALITIES for m in letters):
        raise ConfigError(f"data.context_modalities={value!r}: the modalities read with their neighbours, among t, a, v "
                          "(e.g. t, or t,a,v)")
    return tuple(m for m in MODALITIES if m in letters)


@dataclass(frozen=True)
class ContextSpec:
    """``k`` neighbours on each side (``k=0``: off); ``side``: ``both`` or ``past``;
    ``modalities``: the modalities read with their neighbours; ``encoder``: ``join`` (text joined
    to the transcript, audio/vision the neighbours' mean) or ``lstm`` (bc-LSTM style); see the
    module docstring."""

    k: int = 0
    side: str = "both"
    modalities: tuple[str, ...] = ("t",)
    encoder: str = "join"

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 0:
            raise ConfigError(f"data.context={self.k!r}: the number of neighbours on each side, an integer >= 0 (0: off)")
        if self.side not in SIDES:
            raise ConfigError(f"data.context_side={self.side!r}: use both (previous and next utterances) or past (previous only)")
        object.__setattr__(self, "modalities", parse_context_modalities(self.modalities))
        if self.encoder not in ENCODERS:
            raise ConfigError(f"data.context_encoder={self.encoder!r}: use join (neighbours joined to the transcript, their mean "
                              "beside the frames) or lstm (a bidirectional LSTM over the window's utterance vectors, bc-LSTM style)")

    @property
    def on(self) -> bool:
        return self.k > 0

    def reads(self, modality: str) -> bool:
        """Whether ``modality`` is read with its neighbours."""
        return self.on and modality in self.modalities

    def frame_width(self, modality: str, width: int) -> int:
        """The width a model reads for audio/vision features ``width`` wide: doubled when the
        modality gets its neighbours' mean as extra columns."""
        return 2 * width if modality in ("a", "v") and self.reads(modality) else width

    def windowed(self, modality: str) -> bool:
        """Whether ``modality`` is read through the utterance-level context encoder (``lstm``)."""
        return self.encoder == "lstm" and self.reads(modality)

    def describe(self) -> str:
        if not self.on:
            return "off"
        text = f"{self.k} previous" + (f" and {self.k} next" if self.side == "both" else "") + " utterance(s)"
        return text + (" through an utterance-level LSTM" if self.encoder == "lstm" else "")


def utterance_vectors(frames, lengths, chunk: int = 512):
    """``(pooled (N, D) float64, present (N,) bool)``: each row's frames averaged over its valid
    frames, and whether the row has any non-zero frame. ``frames`` is ``(N, T, D)`` (an array or
    a view that reads ``frames[rows, :]``), ``lengths`` its valid frames per row."""
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    n, width, dim = frames.shape[0], frames.shape[1], frames.shape[2]
    pooled = np.zeros((n, dim), dtype=np.float64)
    present = np.zeros(n, dtype=bool)
    for start in range(0, n, chunk):
        block = np.asarray(frames[start:start + chunk, :], dtype=np.float64)
        valid = np.arange(width)[None, :] < lengths[start:start + chunk, None]
        block = block * valid[:, :, None]
        count = np.maximum(valid.sum(axis=1), 1)[:, None]
        pooled[start:start + chunk] = block.sum(axis=1) / count
        present[start:start + chunk] = np.any(block != 0, axis=(1, 2))
    return pooled, present


def frame_context(frames, lengths, ids, spec: ContextSpec, chunk: int = 512):
    """``(N, D)``: for each row, the mean of its neighbours' utterance vectors (each neighbour's
    frames averaged over its valid frames, ``utterance_vectors``), zeros where no neighbour has
    any non-zero frame."""
    import numpy as np

    pooled, present = utterance_vectors(frames, lengths, chunk)
    out = np.zeros(pooled.shape, dtype=np.float32)
    for row, (before, after) in enumerate(neighbours(ids, spec.k, spec.side)):
        used = [r for r in (*before, *after) if present[r]]
        if used:
            out[row] = pooled[used].mean(axis=0)
    return out


def video_of(sample_id: str) -> tuple[str, str] | None:
    """``(video_id, clip_id)`` of an id ``<video_id>$_$<clip_id>``, or None without one."""
    video, sep, clip = str(sample_id).rpartition(SEPARATOR)
    return (video, clip) if sep and video else None


def check_ids(ids, where: str) -> None:
    """Context needs every row's video: one line naming the data and what to add, else."""
    bad = [i for i in ids if video_of(i) is None]
    if bad:
        raise ConfigError(
            f"{where}: data.context needs each sample's video, but {len(bad)} of {len(ids)} id(s) name none (e.g. {bad[0]!r}); "
            f"ids are '<video_id>{SEPARATOR}<clip_id>' in MMSA pickles and in features from `msakit extract` of a label.csv, "
            "and a text table gives them with 'video_id' and 'clip_id' columns; or set data.context=0"
        )


def _order_key(clips: list[str]):
    numeric = all(c.lstrip("-").isdigit() for c in clips)
    return (lambda pair: (int(pair[1]), pair[0])) if numeric else (lambda pair: (pair[0],))


def video_order(ids) -> dict[str, list[int]]:
    """Each video's rows, in clip order."""
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for i, sample_id in enumerate(ids):
        parsed = video_of(sample_id)
        video, clip = parsed if parsed is not None else (f"\0row{i}", "0")  # a row without a video stands alone
        rows[video].append((i, clip))
    ordered = {}
    for video, members in rows.items():
        key = _order_key([c for _, c in members])
        ordered[video] = [i for i, _ in sorted(members, key=key)]
    return ordered


def neighbours(ids, k: int, side: str = "both") -> list[tuple[list[int], list[int]]]:
    """For each row: ``(previous rows closest first, next rows closest first)`` of its video."""
    result: list[tuple[list[int], list[int]]] = [([], []) for _ in ids]
    if k <= 0:
        return result
    for members in video_order(ids).values():
        for position, row in enumerate(members):
            before = members[max(0, position - k):position][::-1]
            after = members[position + 1:position + 1 + k] if side == "both" else []
            result[row] = (before, after)
    return result


def windows(ids, spec: ContextSpec):
    """Each row's window for the utterance-level context encoder: ``(rows (N, W) int64, lengths
    (N,), positions (N,))``; row ``i``'s window is ``rows[i, :lengths[i]]``: its previous
    utterances (farthest first), itself at ``positions[i]``, then its next ones (closest first),
    all of its video in this split; ``-1`` pads. ``W`` is ``2k + 1`` (``k + 1`` with ``past``)."""
    import numpy as np

    width = spec.k * (2 if spec.side == "both" else 1) + 1
    rows = np.full((len(ids), width), -1, dtype=np.int64)
    lengths = np.zeros(len(ids), dtype=np.int64)
    positions = np.zeros(len(ids), dtype=np.int64)
    for row, (before, after) in enumerate(neighbours(ids, spec.k, spec.side)):
        members = [*before[::-1], row, *after]
        rows[row, :len(members)] = members
        lengths[row], positions[row] = len(members), len(before)
    return rows, lengths, positions


def videos_across_splits(splits: dict) -> dict[str, list[str]]:
    """Videos with utterances in more than one split: ``{video: [split, ...]}``."""
    seen: dict[str, list[str]] = defaultdict(list)
    for name, split in splits.items():
        for video in {p[0] for p in (video_of(i) for i in split.ids) if p is not None}:
            seen[video].append(name)
    return {video: names for video, names in sorted(seen.items()) if len(names) > 1}


def pair_template(tokenizer) -> tuple[list[int], list[int], list[int]]:
    """The special tokens the tokenizer puts around a pair of texts: ``(before the first, between
    them, after the second)``, read off a real encoding (``[CLS]``/``[SEP]`` for BERT, ``<s>``/
    ``</s></s>`` for RoBERTa, XLNet's trailing ``<cls>``), so any tokenizer's own form is kept."""
    first = tokenizer("hello", add_special_tokens=False)["input_ids"]
    second = tokenizer("world", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello", "world")["input_ids"]
    for start in range(len(full) - len(first) + 1):
        if full[start:start + len(first)] == first:
            for end in range(len(full) - len(second), start + len(first) - 1, -1):
                if full[end:end + len(second)] == second:
                    return full[:start], full[start + len(first):end], full[end + len(second):]
    raise ConfigError("data.context: the text encoder's tokenizer does not encode a pair of texts in a form msakit can read; "
                      "use a BERT-, RoBERTa- or XLNet-style encoder, or data.context=0")


def context_token_ids(target: list[list[int]], spec: ContextSpec, ids, tokenizer, max_tokens: int) -> list[list[int]]:
    """Token ids of every row read with its neighbours: the tokenizer's pair form, the scored
    utterance first and whole (truncated only where it and the special tokens exceed ``max_tokens``), then the
    previous utterances (far to near), the tokenizer's separator, and the next ones (near to far).
    ``target`` holds each row's tokens without special tokens. Neighbours are added closest first
    (previous 1, next 1, previous 2, ...) while they fit; one that does not fit whole is cut
    where it is farthest from the scored utterance (a previous one keeps its end, a next one its
    start), and the ones beyond it are left out."""
    head, middle, tail = pair_template(tokenizer)
    specials = len(head) + len(middle) + len(tail)
    sep = tokenizer.sep_token_id
    if sep is None:
        raise ConfigError("data.context: the text encoder's tokenizer has no separator token to mark the scored utterance")
    out = []
    for row, (before, after) in enumerate(neighbours(ids, spec.k, spec.side)):
        own = target[row][: max(1, max_tokens - specials - 1)]  # 1: the separator between previous and next
        budget = max_tokens - specials - len(own) - 1
        previous: list[list[int]] = []
        following: list[list[int]] = []
        order = []
        for j in range(max(len(before), len(after))):  # closest first, previous before next at each distance
            order += [("p", before[j])] if j < len(before) else []
            order += [("n", after[j])] if j < len(after) else []
        for which, r in order:
            if budget <= 0:
                break
            tokens = target[r]
            if len(tokens) > budget:
                tokens = tokens[-budget:] if which == "p" else tokens[:budget]
            (previous if which == "p" else following).append(tokens)
            budget -= len(tokens)
        context = [t for chunk in reversed(previous) for t in chunk] + [sep] + [t for chunk in following for t in chunk]
        out.append(head + own + middle + context + tail)
    return out


__all__ = ["ENCODERS", "SEPARATOR", "ContextSpec", "check_ids", "context_token_ids", "frame_context", "neighbours", "parse_context_modalities", "reads_any", "utterance_vectors", "video_of", "video_order",
           "videos_across_splits", "windows"]
