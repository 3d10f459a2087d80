"""The utterance-level context encoder (``data.context_encoder=lstm``), bc-LSTM style.

bc-LSTM (Poria et al., ACL 2017) reads a video's utterances as a sequence: each utterance is one
vector, and a bidirectional LSTM over them gives every utterance a representation that knows its
neighbours. Here the sequence is the window ``msakit.data.context.windows`` builds (the ``k``
previous utterances, the scored one, the ``k`` next ones, of the same video and split), so any
model can read it without changing how batches are drawn:

- audio/vision: the window's utterance vectors (each utterance's frames averaged) go through the
  LSTM; its output at the scored utterance, projected to the features' width, is appended to every
  valid frame (where ``join`` appends the neighbours' mean), so the model's own encoder reads it;
- text: each utterance of the window is encoded alone by the model's text encoder (the mean of
  its token states, without gradients: the encoder is the feature extractor, as bc-LSTM's
  utterance features were fixed), the LSTM reads them, and its output at the scored utterance goes
  through a layer that starts at zero and is added to every state the text encoder returns for
  the scored transcript. Training therefore starts from the model without context.

``attach_utterance_context(model, spec, hidden)`` gives a model its ``utterance_context`` module
(saved with its weights; ``architecture()`` records its sizes in ``model.json``) and the forward
pre-hook that applies it to every batch, so the model's own code is unchanged.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from msakit.errors import ConfigError


class WindowLSTM(nn.Module):
    """A bidirectional LSTM over a window of utterance vectors ``(B, W, D)``; returns ``(B, out)``,
    its output at each row's scored utterance projected to ``out``, zero for an empty window."""

    def __init__(self, input_dim: int, hidden: int, out: int, zero_init: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, out)
        if zero_init:  # the model starts from where it would be without context
            nn.init.zeros_(self.project.weight)
            nn.init.zeros_(self.project.bias)

    def forward(self, vectors: torch.Tensor, lengths: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        used = lengths > 0
        out = vectors.new_zeros((vectors.shape[0], self.project.out_features))
        if not bool(used.any()):
            return out
        packed = pack_padded_sequence(vectors[used], lengths[used].cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        at = states[torch.arange(states.shape[0], device=states.device), positions[used].to(states.device)]
        return out.index_put((used.nonzero(as_tuple=True)[0],), self.project(at).to(out.dtype))


def window_transcripts(ctx: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The transcripts of a batch's text windows (``batch.context``): ``valid`` ``(B, W)`` (which
    window places hold a transcript), and their ``ids`` and ``mask`` ``(N, width)`` flattened in
    that order and trimmed to the longest of them (no column of padding alone)."""
    ids, mask, lengths = ctx["t_ids"], ctx["t_mask"], ctx["t_lengths"]
    valid = (torch.arange(ids.shape[1], device=lengths.device)[None, :] < lengths[:, None]) & (mask.sum(dim=2) > 0)
    flat_ids, flat_mask = ids[valid], mask[valid]
    width = int(flat_mask.sum(dim=1).max()) if flat_ids.shape[0] else 0
    return valid, flat_ids[:, :width], flat_mask[:, :width]


class UtteranceContext(nn.Module):
    """One ``WindowLSTM`` per modality read with its neighbours; ``sizes``: ``{m: width}`` (the
    utterance vector's width: the features' for audio/vision, the text encoder's hidden size)."""

    def __init__(self, sizes: dict[str, int], hidden: int):
        super().__init__()
        self.sizes, self.hidden = dict(sizes), int(hidden)
        self.encoders = nn.ModuleDict({m: WindowLSTM(d, self.hidden, d, zero_init=(m == "t")) for m, d in self.sizes.items()})

    def architecture(self) -> dict:
        return {"sizes": dict(self.sizes), "hidden": self.hidden}

    def text_shift(self, text_model, batch) -> torch.Tensor:
        """``(B, H)``: what is added to the text encoder's states for each scored transcript."""
        ctx = batch.context
        valid, flat_ids, flat_mask = window_transcripts(ctx)
        vectors = torch.zeros((*valid.shape, self.sizes["t"]), device=ctx["t_ids"].device)
        if flat_ids.shape[0]:
            with torch.no_grad():  # the mean of the transcript's token states (MiniLM's sentence vector)
                vectors[valid] = text_model.sentence_vectors(flat_ids, flat_mask)
        return self.encoders["t"](vectors, ctx["t_lengths"], ctx["t_position"])

    def frames(self, m: str, frames: torch.Tensor, lengths: torch.Tensor, batch) -> torch.Tensor:
        """``frames`` ``(B, T, D)`` with the context vector appended to every valid frame."""
        ctx = batch.context
        vector = self.encoders[m](ctx[m].to(frames.dtype), ctx[f"{m}_lengths"], ctx[f"{m}_position"]).to(frames.dtype)
        valid = (torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths.to(frames.device)[:, None]).to(frames.dtype)
        return torch.cat([frames, vector[:, None, :] * valid[:, :, None]], dim=2)


def _before_forward(model, args):
    batch = args[0]
    if getattr(batch, "context", None) is None:
        raise ConfigError(f"{model.name}: this model reads each utterance with its neighbours (data.context_encoder=lstm) but the "
                          "batch carries no window; build batches with the run's context (msakit.training.runs.run_context)")
    module = model.utterance_context
    text_model = getattr(model, "text_model", None)
    if text_model is not None and hasattr(text_model, "context_shift"):
        # A forward that raised (out of memory, a bad request to a server) skipped _after_forward:
        # its shift must not reach this batch's neighbours or transcripts.
        text_model.context_shift, text_model.context_shift_read = None, False
    changes = {}
    for m, key in (("a", "audio"), ("v", "vision")):
        if m in module.sizes and getattr(batch, key) is not None:
            changes[key] = module.frames(m, getattr(batch, key), getattr(batch, f"{key}_lengths"), batch)
    if "t" in module.sizes and batch.text_ids is not None:
        model.text_model.context_shift = module.text_shift(model.text_model, batch)
    return (dataclasses.replace(batch, **changes), *args[1:]) if changes else None


def _after_forward(model, args, output):
    text_model = getattr(model, "text_model", None)
    shift = getattr(text_model, "context_shift", None)
    if text_model is not None:
        text_model.context_shift = None
    if shift is not None and not getattr(text_model, "context_shift_read", False):
        raise ConfigError(f"{model.name} does not read its transcripts through msakit's text encoder's output, so the "
                          "utterance-level context cannot reach its text; use data.context_encoder=join, or "
                          "data.context_modalities=a,v")
    if text_model is not None:
        text_model.context_shift_read = False
    return None


def attach_utterance_context(model: nn.Module, sizes: dict[str, int], hidden: int) -> nn.Module:
    """Give ``model`` its ``utterance_context`` over the modalities in ``sizes`` and the hooks that
    apply it (module docstring). Text needs the model's ``text_model`` to be msakit's encoder."""
    if "t" in sizes and not hasattr(getattr(model, "text_model", None), "context_shift"):
        raise ConfigError(f"data.context_encoder=lstm on text: {model.name} does not read text through msakit's text encoder; "
                          "use data.context_encoder=join, or data.context_modalities=a,v")
    model.utterance_context = UtteranceContext(sizes, hidden)
    model.register_forward_pre_hook(_before_forward)
    model.register_forward_hook(_after_forward)
    return model


def adopt_text_context(model: nn.Module, text_run: nn.Module) -> None:
    """``model.fusion=text_first``: ``model`` takes ``text_run``'s (its text stage's) LSTM over the
    text window with the text encoder and head it adopts, frozen like them, so the frozen text
    prediction is the text stage's, its neighbours included. Nothing where the stage read none."""
    source, target = getattr(text_run, "utterance_context", None), getattr(model, "utterance_context", None)
    if source is None or "t" not in source.sizes:
        return
    if target is None or target.sizes.get("t") != source.sizes["t"] or target.hidden != source.hidden:
        raise ConfigError(f"{model.name}: the text stage read its neighbours through an utterance-level LSTM "
                          f"({source.architecture()}) this run has not ({target.architecture() if target is not None else 'none'}); "
                          "train both with the same data.context settings")
    target.encoders["t"].load_state_dict(source.encoders["t"].state_dict())
    for p in target.encoders["t"].parameters():
        p.requires_grad_(False)


def context_sizes(spec, model) -> dict[str, int]:
    """``{m: utterance vector width}`` of the modalities ``spec`` reads through the LSTM, for
    ``model`` (its ``dims``' audio/vision widths already include the context columns)."""
    dims, sizes = model.dims, {}
    for m in dims.modalities:
        if not spec.windowed(m):
            continue
        if m == "t":
            width = getattr(getattr(model, "text_model", None), "hidden_size", None)
            if width is None:
                raise ConfigError(f"data.context_encoder=lstm on text: {model.name} does not read text through msakit's text encoder; "
                                  "use data.context_encoder=join, or data.context_modalities=a,v")
            sizes[m] = int(width)
        else:
            sizes[m] = int(dims.audio_dim if m == "a" else dims.vision_dim) // 2
    return sizes


__all__ = ["UtteranceContext", "WindowLSTM", "adopt_text_context", "attach_utterance_context", "context_sizes"]
