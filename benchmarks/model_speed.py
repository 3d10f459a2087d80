"""Per-sample training speed of every msakit model that has a counterpart in MMSA 2.2.1 (TFN, LMF,
MulT, MISA, MAG-BERT, MMIM, Self-MM, and the classic EF-LSTM, LF-DNN, MLF-DNN, MTFN, MLMF, TFR-Net,
MFN, Graph-MFN, MFM, MCTN), MMSA's git master (ALMT, TETFN, CENET) or its authors' repository
(LNLN, KuDA, DMD, DLF, ConFEDE), each against a reference-style run of the same model on the same
machine, side by side. (MulT's re-implemented fairseq-style forward is the one of
``mult_speed.py``, which times the forward alone with one Adam step per batch on both sides;
here MulT gets its trainer's full step.)

The msakit side is msakit as it trains: a real ``Trainer`` (the model with its MOSI defaults,
its objectives, the fused Adam, its clipping and accumulation), the step being the body of
``Trainer.train_epoch`` for one batch, on batches built by its ``BatchBuilder`` (each batch
trimmed to its longest item; batch building is timed separately, not in the steps).

The reference side is written here from what MMSA 2.2.1 does per training step (its model
file, its trainer in ``trains/singleTask/`` and its MOSI section of ``config_regression.json``),
using msakit's modules, so the two *share weights* and do the same arithmetic per position;
what differs is the framework's way of running them:
- inputs as MMSA's data loader gives them: text padded to 50 tokens (``text_bert`` or the
  50-row ``text`` features), audio and vision at the file's full frame count; TFN/LMF's
  audio/vision averaged over the padded array once at load time (``need_normalized``);
- the text encoder's stock forward over all 50 positions (``BertTextEncoder``), fine-tuned or
  not as MMSA's config says; where the reference model reads fixed features (TFN, LMF with
  ``use_bert = false``) both sides read fixed features;
- sequences as the reference runs them (an unpacked LSTM over the 50 text positions in TFN/LMF;
  MISA's audio/vision LSTMs packed with the *text* lengths; MMIM packed with the frames' own);
- the reference trainer's step: its losses, its clipping (MISA: value clip after every
  backward; MMIM: norm clip of every parameter), its accumulation, its extra passes (MMIM trains
  the MMILB networks in a first pass over the data: two forward/backward passes per sample per
  epoch), and PyTorch's default Adam (the per-tensor loop on CPU).
Text encoder on both sides: msakit's packaged MiniLM (or fixed 384-d features), so the
comparison is about running the model, not about BERT against MiniLM. The aligned-only models
(MAG-BERT, EF-LSTM, MFN, Graph-MFN, MFM, MCTN) and DMD/DLF (their configs ask for the aligned
file) run on the aligned layout; MLF-DNN, MTFN and MLMF on the SIMS-shaped set (``msakit synth
--kind sims``, ``kind=sims``), whose human unimodal labels they train on. Where the reference
steps through positions in Python (MFN, Graph-MFN, MFM's inner MFN: an ``LSTMCell`` loop over
all 50 positions) its side does too, with msakit's weights.

Before timing, both sides' predictions are compared in eval mode on unpadded input (every
sample of full length, text and frames of one length). Then training batches alternate
between the sides (the order flipped every batch), one thread, after a warm-up.

    python benchmarks/model_speed.py --batches 20
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import RESULTS, write_result  # noqa: E402
from mult_speed import reference_forward as mult_reference_forward  # noqa: E402
from speed_harness import TEXT_PAD, FixedText, alternate, max_abs_difference, random_text_table  # noqa: E402

from msakit.config import resolve_config  # noqa: E402
from msakit.data.batching import Batch  # noqa: E402
from msakit.data.mmsa import read_mmsa_pickle  # noqa: E402
from msakit.data.synthetic import SyntheticSpec, sims_spec, write_synthetic  # noqa: E402
from msakit.models.base import ModelOutput  # noqa: E402
from msakit.objectives.infomax import gaussian_entropy_term  # noqa: E402
from msakit.training.trainer import Trainer  # noqa: E402

EPOCH = 2  # objectives see a mid-training epoch (Self-MM's ULGM updates labels from epoch 2)
MODELS = ("tfn", "lmf", "mult", "misa", "mag_bert", "mmim", "self_mm", "almt", "tetfn", "cenet", "lnln", "kuda", "dmd", "dlf", "confede",
          "ef_lstm", "lf_dnn", "mlf_dnn", "mtfn", "mlmf", "tfr_net", "mfn", "graph_mfn", "mfm", "mctn")


@dataclass
class RefBatch:
    """One batch as MMSA's data loader gives it: everything padded to the file's width."""

    index: torch.Tensor
    labels: dict[str, torch.Tensor]
    ids: torch.Tensor  # (B, 50) token ids, 0 = padding
    mask: torch.Tensor  # (B, 50)
    audio: torch.Tensor  # (B, T_a of the file, D_a)
    audio_lengths: torch.Tensor
    vision: torch.Tensor
    vision_lengths: torch.Tensor
    audio_mean: torch.Tensor  # (B, D_a): the mean over the padded array (TFN/LMF's loader)
    vision_mean: torch.Tensor
    types: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.types = torch.zeros_like(self.ids)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def as_batch(self) -> Batch:
        return Batch(index=self.index, labels=self.labels, text_ids=self.ids, text_mask=self.mask, audio=self.audio,
                     audio_lengths=self.audio_lengths, vision=self.vision, vision_lengths=self.vision_lengths)


class ReferenceInputs:
    """The training split as the reference holds it: text tokenized and padded to 50, frames
    at the file's width (the same standardised values msakit's batches carry)."""

    def __init__(self, trainer: Trainer):
        builder = trainer.builders["train"]
        split = builder.split
        encoded = trainer.tokenizer(list(split.raw_text), padding="max_length", truncation=True, max_length=TEXT_PAD)
        self.ids = torch.tensor(encoded["input_ids"], dtype=torch.long)
        self.mask = torch.tensor(encoded["attention_mask"], dtype=torch.long)
        self.audio = torch.from_numpy(np.asarray(split.audio, dtype=np.float32))
        self.vision = torch.from_numpy(np.asarray(split.vision, dtype=np.float32))
        self.audio_lengths = torch.from_numpy(np.asarray(split.audio_lengths, dtype=np.int64))
        self.vision_lengths = torch.from_numpy(np.asarray(split.vision_lengths, dtype=np.int64))
        self.labels = builder.labels

    def take(self, rows: np.ndarray) -> RefBatch:
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        audio, vision = self.audio[index], self.vision[index]
        return RefBatch(index, {k: v[index] for k, v in self.labels.items()}, self.ids[index], self.mask[index], audio,
                        self.audio_lengths[index], vision, self.vision_lengths[index], audio.mean(dim=1), vision.mean(dim=1))


def unpadded_pair(trainer: Trainer, width: int = 12, size: int = 4) -> tuple[Batch, RefBatch]:
    """The same full-length samples for both sides: ``L`` real tokens and ``L`` valid frames
    per sample (``L = width`` where ``size`` samples are that long), nothing padded anywhere."""
    builder = trainer.builders["train"]
    split = builder.split
    order = builder.order(True, 0, 0)
    long_enough = [r for r in order if min(len(builder.token_ids[r]), split.audio_lengths[r], split.vision_lengths[r]) >= width]
    rows = np.asarray((long_enough if len(long_enough) >= size else list(order))[:size])
    lengths = [len(builder.token_ids[r]) for r in rows]
    length = min([width, *lengths, *split.audio_lengths[rows], *split.vision_lengths[rows]])
    ids = torch.tensor([builder.token_ids[r][:length] for r in rows], dtype=torch.long)
    mask = torch.ones_like(ids)
    audio = torch.from_numpy(np.asarray(split.audio[rows, :length], dtype=np.float32))
    vision = torch.from_numpy(np.asarray(split.vision[rows, :length], dtype=np.float32))
    full = torch.full((len(rows),), length, dtype=torch.long)
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    labels = {k: v[index] for k, v in builder.labels.items()}
    batch = Batch(index=index, labels=labels, text_ids=ids, text_mask=mask, audio=audio, audio_lengths=full, vision=vision, vision_lengths=full)
    return batch, RefBatch(index, labels, ids, mask, audio, full, vision, full, audio.mean(dim=1), vision.mean(dim=1))


# ---- msakit ---------------------------------------------------------------------------------
class MsakitSide:
    """One batch of ``Trainer.train_epoch``: forward, objectives, backward, per-backward clip,
    ``after_step`` hooks, and the optimiser step every ``grad_accumulation`` batches."""

    def __init__(self, trainer: Trainer):
        self.trainer, self.pending = trainer, 0

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.trainer.model(batch).predictions["m"]

    def step(self, batch: Batch) -> None:
        t = self.trainer
        if self.pending == 0:
            t.optimizer.zero_grad(set_to_none=True)
        output = t.model(batch)
        terms = {}
        for objective in t.objectives:
            terms.update(objective(output, batch, EPOCH))
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise RuntimeError(f"msakit side: the loss is {float(loss)}")
        loss.backward()
        t.clip_after_backward()
        for objective in t.objectives:
            if hasattr(objective, "after_step"):
                objective.after_step(output, batch, EPOCH)
        self.pending += 1
        if self.pending == t.config.train.grad_accumulation:
            t._optimizer_step()
            self.pending = 0
        for value in terms.values():
            float(value.detach())


# ---- the reference's way, one class per model --------------------------------------------------
def stock_text_states(model: nn.Module, ref: RefBatch) -> torch.Tensor:
    """MMSA's ``BertTextEncoder`` (``use_finetune = true``): the stock forward over all 50 positions."""
    return model.text_model.backbone(input_ids=ref.ids, attention_mask=ref.mask, token_type_ids=ref.types).last_hidden_state


def default_adam(groups) -> torch.optim.Optimizer:
    """``optim.Adam`` as the reference creates it: PyTorch's default, the per-tensor loop on CPU."""
    return torch.optim.Adam(groups)


class TFNStyle:
    """MMSA ``TFN.py`` + ``FeatureNets.py`` + ``trains/singleTask/TFN.py``: audio/vision averaged
    over the padded array at load time, then the sub-network; text an LSTM over all 50 positions
    (padding included), its final state; the outer product by ``bmm``; L1; Adam every batch."""

    built_as = ("text LSTM over all 50 positions (fixed features or stock MiniLM forward), audio/vision means over the padded "
                "file array precomputed as MMSA's loader does, fusion by bmm, L1, default Adam per batch")

    def __init__(self, model: nn.Module, fixed: FixedText | None):
        self.model, self.fixed = model, fixed
        self.optimizer = default_adam(model.parameter_groups())

    def encode(self, ref: RefBatch) -> dict[str, torch.Tensor]:
        m = self.model
        states = self.fixed.table[ref.ids] if self.fixed is not None else stock_text_states(m, ref)
        lstm = m.subnets["t"].encoder
        _, (h, _) = lstm.rnn(states)
        out = {"t": lstm.linear(lstm.dropout(h[0]))}
        for s, x in (("a", ref.audio_mean), ("v", ref.vision_mean)):
            sub = m.subnets[s]
            out[s] = sub.layers(sub.drop(sub.norm(x)))
        return out

    def predict(self, ref: RefBatch) -> torch.Tensor:
        m, h = self.model, self.encode(ref)
        one = torch.ones(h["a"].shape[0], 1)
        a, v, t = (torch.cat((one, h[s]), dim=1) for s in "avt")
        tensor = torch.bmm(a.unsqueeze(2), v.unsqueeze(1)).view(a.shape[0], -1, 1)
        tensor = torch.bmm(tensor, t.unsqueeze(1)).view(a.shape[0], -1)
        bound = m.config.output_bound
        return torch.sigmoid(m.out_layer(m.post_fusion(tensor))).squeeze(-1) * (2 * bound) - bound

    def step(self, ref: RefBatch) -> None:
        self.optimizer.zero_grad()
        loss = F.l1_loss(self.predict(ref), ref.labels["m"])
        loss.backward()
        self.optimizer.step()
        loss.item()  # as the reference's trainer logs it


class LMFStyle(TFNStyle):
    """MMSA ``LMF.py``: TFN's sub-networks, then the low-rank factors (audio, video, text)."""

    built_as = ("text LSTM over all 50 positions (fixed features or stock MiniLM forward), audio/vision means over the padded "
                "file array precomputed as MMSA's loader does, low-rank factors, L1, default Adam per batch")

    def predict(self, ref: RefBatch) -> torch.Tensor:
        m, h = self.model, self.encode(ref)
        one = torch.ones(h["a"].shape[0], 1)
        fused = None
        for s in "avt":
            projected = torch.matmul(torch.cat((one, h[s]), dim=1), m.factors[s])
            fused = projected if fused is None else fused * projected
        return (torch.matmul(m.fusion_weights, fused.permute(1, 0, 2)).squeeze() + m.fusion_bias).view(-1)


class MulTStyle:
    """MMSA ``MULT.py`` + ``trains/singleTask/MULT.py``: the fairseq-style forward of ``mult_speed.py``
    on fixed text features padded to 50 and file-width frames (attention over the padding); L1;
    value clipping after every backward; a step every 8 batches (``update_epochs``)."""

    built_as = ("fairseq-style forward (mult_speed.py) over fixed features padded to 50 and file-width frames, L1, "
                "value clip after each backward, default Adam every 8 batches")

    def __init__(self, model: nn.Module, fixed: FixedText, accumulation: int):
        self.model, self.fixed, self.accumulation, self.pending = model, fixed, accumulation, 0
        self.optimizer = default_adam(model.parameter_groups())

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return mult_reference_forward(self.model, self.fixed.table[ref.ids], ref.audio, ref.vision)

    def step(self, ref: RefBatch) -> None:
        m = self.model
        if self.pending == 0:
            self.optimizer.zero_grad()
        loss = F.l1_loss(self.predict(ref), ref.labels["m"])
        loss.backward()
        nn.utils.clip_grad_value_([p for p in m.parameters() if p.requires_grad], m.config.grad_clip)
        self.pending += 1
        if self.pending == self.accumulation:
            self.optimizer.step()
            self.pending = 0
        loss.item()  # as the reference's trainer logs it


class MISAStyle:
    """MMSA ``MISA.py`` + ``trains/singleTask/MISA.py``: text the masked mean of the stock MiniLM
    forward over 50 positions; audio/vision through the two packed bi-LSTMs *with the text
    lengths* (``lengths="text"``, as the reference) or with their own (``lengths="own"``, msakit's
    choice, to separate that from the framework); MSE + diff + CMD + recon (msakit's loss
    functions, their own instances); value clipping after every backward; a step every 2."""

    def __init__(self, model: nn.Module, objectives: list[nn.Module], lengths: str):
        self.model, self.objectives, self.lengths, self.pending = model, objectives, lengths, 0
        self.optimizer = default_adam([p for p in model.parameters() if p.requires_grad])
        self.built_as = (f"stock MiniLM forward over 50 tokens (fine-tuned), audio/vision bi-LSTMs packed with the "
                         f"{'text lengths (as MMSA)' if lengths == 'text' else 'frames own lengths (msakit choice)'} on the file-width "
                         "arrays, same losses, value clip after each backward, default Adam every 2 batches")

    def forward(self, ref: RefBatch) -> ModelOutput:
        m = self.model
        states = stock_text_states(m, ref)
        mask = ref.mask.to(states.dtype)
        utterances = {"t": (states * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)}
        text_lengths = ref.mask.sum(dim=1)
        for s, frames, own in (("v", ref.vision, ref.vision_lengths), ("a", ref.audio, ref.audio_lengths)):
            utterances[s] = m.sequence_encoders[s](frames, text_lengths if self.lengths == "text" else own)
        order = ("t", "v", "a")
        projected = {s: m.project[s](utterances[s]) for s in order}
        private = {s: m.private[s](projected[s]) for s in order}
        shared = {s: m.shared(projected[s]) for s in order}
        reconstructed = {s: m.reconstruct[s](private[s] + shared[s]) for s in order}
        codes = torch.stack([private[s] for s in order] + [shared[s] for s in order], dim=1)
        fused = m.fusion(m.transformer(codes).flatten(1))
        return ModelOutput({"m": m.regressor(fused).squeeze(-1)}, {},
                           {"projected": projected, "private": private, "shared": shared, "reconstructed": reconstructed})

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return self.forward(ref).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        m = self.model
        if self.pending == 0:
            self.optimizer.zero_grad()
        output = self.forward(ref)
        loss = sum(sum(o(output, ref, EPOCH).values()) for o in self.objectives)
        loss.backward()
        nn.utils.clip_grad_value_([p for p in m.parameters() if p.requires_grad], m.config.grad_clip)
        self.pending += 1
        if self.pending == 2:  # update_epochs = 2
            self.optimizer.step()
            self.pending = 0
        loss.item()  # as the reference's trainer logs it


class MAGStyle:
    """MMSA ``BERT_MAG.py`` + its trainer: the gate on the embedding output of all 50 positions
    (aligned frames 50 wide), the stock encoder, pooler, dropout, regressor; L1; Adam every batch."""

    built_as = "gate + stock MiniLM forward over all 50 positions with the 50 aligned frames (fine-tuned), pooler, L1, default Adam per batch"

    def __init__(self, model: nn.Module):
        self.model = model
        c = model.config
        self.optimizer = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def predict(self, ref: RefBatch) -> torch.Tensor:
        m, width = self.model, ref.ids.shape[1]
        # An aligned file holds one frame per text position (50); a shorter file is zero-padded to that.
        audio, vision = (x if x.shape[1] == width else F.pad(x[:, :width], (0, 0, 0, width - min(width, x.shape[1]))) for x in (ref.audio, ref.vision))
        states = m.text_model.token_states(ref.ids, ref.mask, embedding_hook=lambda e: m.gate(e, audio, vision))
        return m.regressor(m.head_dropout(m.pooler(states[:, 0]))).squeeze(-1)

    def step(self, ref: RefBatch) -> None:
        self.optimizer.zero_grad()
        loss = F.l1_loss(self.predict(ref), ref.labels["m"])
        loss.backward()
        self.optimizer.step()
        loss.item()  # as the reference's trainer logs it


class MMIMStyle:
    """MMSA ``MMIM.py`` + ``trains/singleTask/MMIM.py``. Per epoch the reference makes two passes:
    ``train_mmilb`` (forward, ``-lld`` backward through every parameter, norm clip of all, the MMILB
    Adam) then ``train_others`` (forward with labels and the memory, L1 + α·nce − β·lld − β·H,
    backward, norm clip of all, the main Adam). One timed unit here is both passes on one batch."""

    built_as = ("two passes per batch (MMILB stage, then main stage), each a stock MiniLM forward over 50 tokens (fine-tuned), "
                "packed bi-LSTMs on the file-width frames, every MI/CPC term, norm clip of all parameters, default Adam")

    def __init__(self, model: nn.Module):
        self.model, self.batches, self.memory = model, 0, {}
        c, groups = model.config, model._groups()
        self.optimizer_mmilb = torch.optim.Adam(groups["mmilb"], lr=c.lr_mmilb, weight_decay=c.weight_decay_mmilb)
        self.optimizer_main = torch.optim.Adam([
            {"params": groups["text"], "lr": c.lr_text, "weight_decay": c.weight_decay_text},
            {"params": groups["main"], "lr": c.lr_main, "weight_decay": c.weight_decay_main},
        ])

    def forward(self, ref: RefBatch, project: bool):
        m = self.model
        h = {"t": stock_text_states(m, ref)[:, 0]}
        h["a"] = m.sequence_encoders["a"](ref.audio, ref.audio_lengths)
        h["v"] = m.sequence_encoders["v"](ref.vision, ref.vision_lengths)
        lld = m.mmilb["tv"].log_likelihood(h["t"], h["v"]) + m.mmilb["ta"].log_likelihood(h["t"], h["a"])
        f = m.fusion  # Dropout, Linear, Tanh, Linear, Tanh
        y1 = torch.tanh(f[1](f[0](torch.cat([h["t"], h["a"], h["v"]], dim=1))))
        f[3](y1)  # the reference's Fusion computes linear_2 once more and drops it
        fused = torch.tanh(f[3](y1))
        prediction = m.regressor(fused).squeeze(-1)
        nce = m.cpc["t"](h["t"], fused) + m.cpc["v"](h["v"], fused) + m.cpc["a"](h["a"], fused)
        projected = {pair: m.mmilb[pair].project(h[pair[1]]) for pair in ("tv", "ta")} if project else None
        return prediction, lld, nce, projected

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return self.forward(ref, project=False)[0]

    def step(self, ref: RefBatch) -> None:
        m, c = self.model, self.model.config
        # Stage 1 (train_mmilb): the MMILB estimators.
        m.zero_grad()
        _, lld, _, _ = self.forward(ref, project=False)
        (-lld).backward()
        nn.utils.clip_grad_norm_(m.parameters(), c.grad_clip)
        self.optimizer_mmilb.step()
        # Stage 2 (train_others): everything else, with the entropy term over a memory of 1 batch.
        m.zero_grad()
        prediction, lld, nce, projected = self.forward(ref, project=True)
        labels = ref.labels["m"]
        entropy = torch.zeros(())
        for pair, p in projected.items():
            positive, negative = p[labels > 0], p[labels < 0]
            if self.batches >= c.mem_size and pair in self.memory:
                term = gaussian_entropy_term(torch.cat([self.memory[pair][0], positive]), torch.cat([self.memory[pair][1], negative]))
                if torch.isfinite(term):  # the reference would carry a NaN/inf on; that would end the benchmark
                    entropy = entropy + term
            self.memory[pair] = (positive.detach(), negative.detach())
        loss = F.l1_loss(prediction, labels) + c.cpc_weight * nce - c.mmilb_weight * lld
        if self.batches > c.mem_size:
            loss = loss - c.mmilb_weight * entropy
        loss.backward()
        nn.utils.clip_grad_norm_(m.parameters(), c.grad_clip)
        self.optimizer_main.step()
        self.batches += 1
        loss.item()  # as the reference's trainer logs it


class SelfMMStyle:
    """MMSA's Self-MM protocol in msakit's own Self-MM code (as ``benchmarks/speed.py``): text padded
    to 50 through the stock forward, packed LSTMs over the file-width frames, ULGM (its own
    instance), default Adam every 4 batches (``update_epochs``)."""

    built_as = "same Self-MM module with the reference's choices: stock MiniLM forward over 50 tokens, packed LSTMs on file-width frames, own ULGM, default Adam every 4 batches"

    def __init__(self, model: nn.Module, objectives: list[nn.Module], accumulation: int):
        self.model, self.objectives, self.accumulation, self.pending = model, objectives, accumulation, 0
        self.optimizer = default_adam(model.parameter_groups())

    @contextlib.contextmanager
    def reference_paths(self):
        m = self.model
        saved = (m.text_model.unpadded, m.audio_model.packed, m.video_model.packed)
        m.text_model.unpadded, m.audio_model.packed, m.video_model.packed = False, True, True
        try:
            yield
        finally:
            m.text_model.unpadded, m.audio_model.packed, m.video_model.packed = saved

    def predict(self, ref: RefBatch) -> torch.Tensor:
        with self.reference_paths():
            return self.model(ref.as_batch()).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        if self.pending == 0:
            self.optimizer.zero_grad()
        batch = ref.as_batch()
        with self.reference_paths():
            output = self.model(batch)
        loss = sum(sum(o(output, batch, EPOCH).values()) for o in self.objectives)
        loss.backward()
        for o in self.objectives:
            if hasattr(o, "after_step"):
                o.after_step(output, batch, EPOCH)
        self.pending += 1
        if self.pending == self.accumulation:
            self.optimizer.step()
            self.pending = 0
        loss.item()  # as the reference's trainer logs it


def full_width(batch_size: int, x: torch.Tensor) -> torch.Tensor:
    """Every row "valid" up to the padded width: the reference masks nothing."""
    return torch.full((batch_size,), x.shape[1], dtype=torch.long)


def padded_batch(ref: RefBatch) -> Batch:
    """The reference's inputs as a msakit batch: text padded to 50 (the mask still tells BERT
    which tokens are real, as ``BertTextEncoder`` does), frames at the file's width with every
    frame counted, so msakit's models mask nothing, as the reference."""
    b = len(ref)
    return Batch(index=ref.index, labels=ref.labels, text_ids=ref.ids, text_mask=ref.mask, audio=ref.audio,
                 audio_lengths=full_width(b, ref.audio), vision=ref.vision, vision_lengths=full_width(b, ref.vision))


class ALMTStyle:
    """MMSA master ``ALMT.py`` + ``trains/singleTask/ALMT.py``: the stock MiniLM forward over 50 tokens
    (fine-tuned), every one of the 50 text positions and every file-width frame attended to (no
    mask), MSE, PyTorch's default AdamW (lr, weight decay), a step per batch."""

    built_as = "stock MiniLM forward over 50 tokens (fine-tuned), no attention mask over the padded text and file-width frames, MSE, default AdamW per batch"

    def __init__(self, model: nn.Module):
        self.model = model
        c = model.config
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def predict(self, ref: RefBatch) -> torch.Tensor:
        m, batch, n = self.model, padded_batch(ref), self.model.config.token_length
        states = stock_text_states(m, ref)
        inputs = {"t": (states, full_width(len(ref), states)), "a": (batch.audio, batch.audio_lengths), "v": (batch.vision, batch.vision_lengths)}
        tokens = {s: m.embed[s](m.project[s](x), lengths)[:, :n] for s, (x, lengths) in inputs.items() if s in m.embed}
        language = m.language(tokens["t"], keep_states=True)
        hyper = m.hyper.expand(len(ref), -1, -1)
        for layer, h_t in zip(m.ahl, language):
            hyper = layer(h_t, tokens, hyper)
        return m.regressor(m.fusion(hyper, language[-1])).squeeze(-1)

    def step(self, ref: RefBatch) -> None:
        self.optimizer.zero_grad()
        loss = F.mse_loss(self.predict(ref), ref.labels["m"])
        loss.backward()
        self.optimizer.step()
        loss.item()  # as the reference's trainer logs it


class TETFNStyle:
    """MMSA master ``multiTask/TETFN.py`` + its trainer (Self-MM's): the stock MiniLM forward over 50
    tokens (fine-tuned), the LSTMs over the file-width frames, every position pooled and attended to
    (no mask; the causal offsets from the padded widths), the last padded position; L1 + ULGM (its
    own instance); default Adam every 4 batches (``update_epochs``)."""

    built_as = ("stock MiniLM forward over 50 tokens (fine-tuned), LSTMs over file-width frames, no padding mask, last padded "
                "position, own ULGM, default Adam every 4 batches")

    def __init__(self, model: nn.Module, objectives: list[nn.Module], accumulation: int):
        self.model, self.objectives, self.accumulation, self.pending = model, objectives, accumulation, 0
        self.optimizer = default_adam(model.parameter_groups())

    def forward(self, ref: RefBatch) -> ModelOutput:
        from msakit.models.tetfn import convolve, masked_max

        m, b = self.model, len(ref)
        states = stock_text_states(m, ref)
        t, lt = convolve(m.proj_t, states, full_width(b, states))
        a, la = m.audio_model(ref.audio, full_width(b, ref.audio))
        v, lv = m.video_model(ref.vision, full_width(b, ref.vision))
        attended = {
            "t": (m.t_with_a(t, lt, a, la), m.t_with_v(t, lt, v, lv)),
            "a": (m.a_with_t(a, la, t, lt), m.a_with_v(a, la, v, lv, t, lt)),
            "v": (m.v_with_t(v, lv, t, lt), m.v_with_a(v, lv, a, la, t, lt)),
        }
        last = [m.memory[s](torch.cat(attended[s], dim=-1), n)[:, -1] for s, n in (("t", lt), ("a", la), ("v", lv))]
        inputs = {"m": torch.cat(last, dim=-1), "t": masked_max(t, lt), "a": masked_max(a, la), "v": masked_max(v, lv)}
        features = {s: m.feature_layers[s](x) for s, x in inputs.items()}
        return ModelOutput({s: m.regressors[s](f).squeeze(-1) for s, f in features.items()}, features)

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return self.forward(ref).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        if self.pending == 0:
            self.optimizer.zero_grad()
        output = self.forward(ref)
        loss = sum(sum(o(output, ref, EPOCH).values()) for o in self.objectives)
        loss.backward()
        for o in self.objectives:
            if hasattr(o, "after_step"):
                o.after_step(output, ref, EPOCH)
        self.pending += 1
        if self.pending == self.accumulation:
            self.optimizer.step()
            self.pending = 0
        loss.item()  # as the reference's trainer logs it


class LNLNStyle:
    """github:Haoyu-ha/LNLN ``models/lnln.py`` + ``train.py`` + ``core/dataset.py``: per sample and
    modality a missing rate (U(0, 1), half of the batch 0); lost word pieces replaced by [UNK]
    (mask kept), lost frames zeroed at the file's width; the stock MiniLM forward over 50 tokens
    (fine-tuned) for the incomplete and for the complete input, no padding mask anywhere; MSE +
    0.9·L_cc + 0.8·L_adv + 0.1·L_rec; PyTorch's default AdamW per batch."""

    built_as = ("stock MiniLM forward over 50 tokens twice per step (incomplete with [UNK], complete), no attention mask over padded "
                "text and file-width frames, the four LNLN losses, default AdamW per batch")

    def __init__(self, model: nn.Module, unk_id: int):
        self.model, self.unk_id = model, unk_id
        c = model.config
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def tokens(self, ids, mask, audio, vision) -> dict[str, torch.Tensor]:
        m, b, n = self.model, ids.shape[0], self.model.config.token_length
        states = m.text_model.backbone(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        inputs = {"t": (states, full_width(b, states)), "a": (audio, full_width(b, audio)), "v": (vision, full_width(b, vision))}
        return {s: m.embed[s](m.project[s](x), lengths)[:, :n] for s, (x, lengths) in inputs.items() if s in m.embed}

    def forward(self, tokens: dict[str, torch.Tensor]):
        from msakit.objectives.incomplete import reverse_gradient

        m, n = self.model, self.model.config.token_length
        b = tokens["t"].shape[0]
        w = m.completeness_head(m.completeness(tokens["t"])[:, 0]).squeeze(-1)
        proxy = reverse_gradient(m.proxy(torch.cat([m.proxy_input.expand(b, -1, -1)] + [tokens[s] for s in m.sources], dim=1))[:, :n])
        dominant = proxy * (1 - w)[:, None, None] + tokens["t"] * w[:, None, None]
        language = m.language(dominant, keep_states=True)
        hyper = m.hyper.expand(b, -1, -1)
        for layer, h in zip(m.ahl, language):
            hyper = layer(h, tokens, hyper)
        return m.regressor(m.fusion.encode(hyper, language[-1])[:, 1:].mean(dim=1)).squeeze(-1), w, dominant

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return self.forward(self.tokens(ref.ids, ref.mask, ref.audio, ref.vision))[0]

    def step(self, ref: RefBatch) -> None:
        from msakit.data.random_missing import draw_missing_rates

        m, c, b = self.model, self.model.config, len(ref)
        rates = {s: draw_missing_rates(b) for s in ("t", "a", "v")}
        lengths = ref.mask.sum(dim=1)
        position = torch.arange(ref.ids.shape[1])[None, :]
        inner = (position > 0) & (position < (lengths - 1)[:, None])
        lost = inner & (torch.rand(ref.ids.shape) < rates["t"][:, None])
        ids = ref.ids.masked_fill(lost, self.unk_id)
        audio = ref.audio * (torch.rand(ref.audio.shape[:2]) >= rates["a"][:, None])[:, :, None]
        vision = ref.vision * (torch.rand(ref.vision.shape[:2]) >= rates["v"][:, None])[:, :, None]
        self.optimizer.zero_grad()
        incomplete = self.tokens(ids, ref.mask, audio, vision)
        prediction, w, dominant = self.forward(incomplete)
        complete = self.tokens(ref.ids, ref.mask, ref.audio, ref.vision)
        logits = m.discriminator(torch.cat([dominant, complete["t"]]).reshape(-1, dominant.shape[-1]))
        target = torch.cat([torch.ones(logits.shape[0] // 2), torch.zeros(logits.shape[0] // 2)]).long()
        order = ("t",) + m.sources
        rebuilt = torch.cat([m.reconstructor[s](incomplete[s]) for s in order], dim=1)
        loss = (F.mse_loss(prediction, ref.labels["m"]) + c.completeness_weight * F.mse_loss(w, 1 - rates["t"])
                + c.adversarial_weight * F.cross_entropy(logits, target)
                + c.reconstruction_weight * F.mse_loss(rebuilt, torch.cat([complete[s] for s in order], dim=1)))
        loss.backward()
        self.optimizer.step()
        loss.item()  # as the reference's trainer logs it


class KuDAStyle:
    """github:MKMaS-GUET/KuDA ``train.py`` (stage 2): text padded to ``seq_lens[0]`` through the stock
    forward, frames padded to ``seq_lens`` with their padding masks, the sentiment ratio from the
    label, MSE + 0.1·NCE, PyTorch's default AdamW per batch. msakit's KuDA does the same arithmetic;
    the step differs in the optimiser and the trainer around it."""

    built_as = "the same KuDA forward on the reference's fixed lengths (masks as the reference), MSE + 0.1 NCE, default AdamW per batch"

    def __init__(self, model: nn.Module):
        self.model = model
        c = model.config
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=c.lr, weight_decay=c.weight_decay)

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return self.model(ref.as_batch()).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        self.optimizer.zero_grad()
        output = self.model(ref.as_batch())
        loss = F.mse_loss(output.predictions["m"], ref.labels["m"]) + self.model.config.nce_weight * sum(output.extras["cpc"].values())
        loss.backward()
        self.optimizer.step()
        loss.item()  # as the reference's trainer logs it


class CENETStyle:
    """MMSA master ``CENET.py`` + ``trains/singleTask/CENET.py``: CE inside the stock MiniLM forward over
    50 tokens (fine-tuned), attending to every file-width frame (no mask); L1; norm clip of every
    parameter; default Adam (its three groups, eps) per batch."""

    built_as = "CE inside the stock MiniLM forward over 50 tokens (fine-tuned), no mask over file-width frames, L1, norm clip of all parameters, default Adam per batch"

    def __init__(self, model: nn.Module):
        self.model = model
        self.optimizer = default_adam(model.parameter_groups())

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return self.model(padded_batch(ref)).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        self.optimizer.zero_grad()
        loss = F.l1_loss(self.predict(ref), ref.labels["m"])
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.model.config.grad_clip)
        self.optimizer.step()
        loss.item()  # as the reference's trainer logs it


class DecoupledStyle:
    """mdswyz/DMD ``trains/singleTask/DMD.py`` (and pwang322/DLF's ``DLF.py``, built on it) with
    their ``model/*.py`` input stage: text through the stock MiniLM forward over all 50 positions
    (fine-tuned), BERT's states of the padding tokens kept (msakit zeroes them), the 50-wide
    aligned frames, every position attended to (the reference's ``attn_mask`` is MulT's causal
    mask, the same on both sides); the same network and losses (their own instances); gradient
    values clipped after every backward; PyTorch's default Adam over every parameter (the graph
    units included), a step every ``update_epochs`` (10) batches."""

    def __init__(self, model: nn.Module, objectives: list[nn.Module], accumulation: int, what: str):
        self.model, self.objectives, self.accumulation, self.pending = model, objectives, accumulation, 0
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=model.config.lr)
        self.built_as = (f"{what}: stock MiniLM forward over 50 tokens (fine-tuned), padding tokens' states kept, 50-wide aligned frames, "
                         f"same losses, value clip {model.config.grad_clip} after each backward, default Adam every {accumulation} batches")

    @contextlib.contextmanager
    def reference_inputs(self):
        from msakit.models.dmd import ORDER, fixed_length

        m = self.model

        def project(batch: Batch) -> dict[str, torch.Tensor]:
            c = m.config
            states = F.dropout(m.text_model.token_states(batch.text_ids, batch.text_mask), c.text_dropout, m.training)
            inputs = {"t": fixed_length(states, full_width(len(batch), states), c.text_length),  # nothing zeroed
                      "a": fixed_length(batch.audio, batch.audio_lengths, c.audio_length),
                      "v": fixed_length(batch.vision, batch.vision_lengths, c.video_length)}
            return {s: m.projections[s](inputs[s].transpose(1, 2)) if s in m.projections else inputs[s].transpose(1, 2) for s in ORDER}

        m._project = project  # an instance attribute: the class's input stage, shadowed while the reference runs
        try:
            yield
        finally:
            del m._project

    def predict(self, ref: RefBatch) -> torch.Tensor:
        with self.reference_inputs():
            return self.model(padded_batch(ref)).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        m = self.model
        if self.pending == 0:
            self.optimizer.zero_grad()
        batch = padded_batch(ref)
        with self.reference_inputs():
            output = m(batch)
        loss = sum(sum(o(output, batch, EPOCH).values()) for o in self.objectives)
        loss.backward()
        nn.utils.clip_grad_value_([p for p in m.parameters() if p.requires_grad], m.config.grad_clip)
        self.pending += 1
        if self.pending == self.accumulation:
            self.optimizer.step()
            self.pending = 0
        loss.item()  # as the reference's trainer logs it


class ConFEDEStyle:
    """XpastaX/ConFEDE ``MOSI/train/constrastive/TVA_fusion_train.py`` + ``TVA_fusion.py`` +
    ``dataloader/MOSI.py`` (fusion stage): per step the batch's transcripts tokenized inside the
    forward (``padding=True``) and the stock MiniLM forward (here fine-tuned, as msakit's default),
    audio/vision at the file's width with a key-padding mask and the mean over *every* position;
    the 6 retrieved partners of each sample (2 similar same-label, 2 + 2 other-label) run
    through the network in a second forward and enter the MSE and the contrastive term;
    AdamW (decay 1e-3 but biases and LayerNorm weights) with a linear warm-up schedule stepped
    per batch; and every second epoch an eval-mode pass over the training set refreshes the
    similarity ranking (counted here as half an eval-mode forward per sample: every second step,
    one over the batch)."""

    built_as = ("per step: tokenizing in the forward, stock MiniLM forward (fine-tuned), file-width frames with key-padding mask and "
                "mean over all positions, the 6 partners per sample in a second forward (7 samples run per trained sample), "
                "same losses over all, AdamW + linear warm-up per batch, plus half an eval forward per sample (ranking refresh)")

    def __init__(self, model: nn.Module, objectives: list[nn.Module], inputs: "ReferenceInputs", texts: list[str], tokenizer, steps: int,
                 partners: bool = True):
        self.model, self.objectives, self.inputs, self.texts, self.tokenizer = model, objectives, inputs, texts, tokenizer
        self.partners = partners
        if not partners:  # to separate the framework's way of running from ConFEDE's retrieval design
            self.built_as = ("as the reference side but without the partners' forward and the ranking refresh (partners from the batch, "
                             "as msakit): tokenizing in the forward, stock MiniLM, file-width frames, AdamW + warm-up per batch")
        self.rng, self.steps = np.random.default_rng(0), 0
        no_decay = ("bias", "LayerNorm.weight", "norm.weight")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([
            {"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": 1e-3},
            {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ], lr=model.config.lr)
        warm = max(1, steps // 25)  # num_warm_up = 1 epoch of the 25
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: (s + 1) / warm if s < warm else max(0.0, (25 * warm - s) / max(1, 24 * warm)))

    def frames(self, encoder: nn.Module, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        frames = frames[:, : encoder.positions.shape[1] - 1]
        b, n, _ = frames.shape
        x = torch.cat([encoder.cls_token.expand(b, -1, -1), encoder.proj(frames)], dim=1) + encoder.positions[:, : n + 1]
        valid = torch.arange(n + 1)[None, :] < (lengths.clamp(min=1, max=n) + 1)[:, None]
        return encoder.norm(encoder.transformer(encoder.dropout(x), src_key_padding_mask=~valid)).mean(dim=1)  # padding averaged in

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, ref: RefBatch) -> ModelOutput:
        from msakit.models.confede import ORDER

        m = self.model
        text = m.text_model.backbone(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state[:, 0]
        embedded = {"t": m.text_proj(text), "v": self.frames(m.frame_encoders["v"], ref.vision, ref.vision_lengths),
                    "a": self.frames(m.frame_encoders["a"], ref.audio, ref.audio_lengths)}
        sim = {s: m.similarity[s](embedded[s]) for s in ORDER}
        dis = {s: m.dissimilarity[s](embedded[s]) for s in ORDER}
        fused = torch.cat([sim[s] for s in ORDER] + [dis[s] for s in ORDER], dim=-1)
        logits = {f"{kind}_{s}": m.mono_decoder(feats[s]).squeeze(-1) for kind, feats in (("sim", sim), ("dis", dis)) for s in ORDER}
        pairing = torch.cat([embedded[s] for s in ORDER], dim=-1).detach()
        return ModelOutput({"m": m.decoder(fused).squeeze(-1)}, {}, {"similarity": sim, "dissimilarity": dis, "logits": logits, "pairing": pairing})

    def predict(self, ref: RefBatch) -> torch.Tensor:
        return self.forward(ref.ids, ref.mask, ref).predictions["m"]

    def run(self, rows: np.ndarray) -> tuple[ModelOutput, RefBatch]:
        ref = self.inputs.take(rows)
        encoded = self.tokenizer([self.texts[r] for r in rows], padding=True, truncation=True, max_length=256, return_tensors="pt")
        return self.forward(encoded["input_ids"], encoded["attention_mask"], ref), ref

    def step(self, ref: RefBatch) -> None:
        rows = ref.index.numpy()
        if not self.partners:
            self.optimizer.zero_grad()
            output, _ = self.run(rows)
            loss = sum(sum(o(output, ref, EPOCH).values()) for o in self.objectives)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            loss.item()
            return
        if self.steps % 2 == 1:  # the ranking refresh, amortised: one eval-mode pass over the training set every second epoch
            self.model.eval()
            with torch.no_grad():
                self.run(rows)
            self.model.train()
        self.steps += 1
        self.optimizer.zero_grad()
        anchors, _ = self.run(rows)
        partners, partner_ref = self.run(self.rng.integers(0, len(self.texts), 6 * len(rows)))
        output = ModelOutput(
            {"m": torch.cat([anchors.predictions["m"], partners.predictions["m"]])}, {},
            {"similarity": {s: torch.cat([anchors.extras["similarity"][s], partners.extras["similarity"][s]]) for s in "tva"},
             "dissimilarity": {s: torch.cat([anchors.extras["dissimilarity"][s], partners.extras["dissimilarity"][s]]) for s in "tva"},
             "logits": {k: torch.cat([anchors.extras["logits"][k], partners.extras["logits"][k]]) for k in anchors.extras["logits"]},
             "pairing": torch.cat([anchors.extras["pairing"], partners.extras["pairing"]])})
        labels = Batch(index=torch.cat([ref.index, partner_ref.index]), labels={"m": torch.cat([ref.labels["m"], partner_ref.labels["m"]])})
        loss = sum(sum(o(output, labels, EPOCH).values()) for o in self.objectives)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        loss.item()  # as the reference's trainer logs it


# ---- the classic models MMSA 2.2.1 ships (issue 32) ---------------------------------------------
class SubnetStyle(TFNStyle):
    """LF-DNN, MLF-DNN, MTFN, MLMF as MMSA 2.2.1 runs them (``singleTask/LF_DNN.py``,
    ``multiTask/MLF_DNN.py``, ``MTFN.py``, ``MLMF.py`` and their trainers): TFN's sub-networks
    as ``TFNStyle`` runs them (text LSTM over all 50 positions, audio/vision means over the
    padded file array precomputed), then msakit's own fusion and heads (the same arithmetic);
    the model's losses (multi-task: weighted L1 on the fused and the human unimodal labels);
    default Adam over the reference's groups, a step per batch."""

    MODULES = ("msakit.models.tfn", "msakit.models.lmf", "msakit.models.lf_dnn")

    def __init__(self, model: nn.Module, fixed: FixedText, objectives: list[nn.Module]):
        super().__init__(model, fixed)
        self.objectives, self.current = objectives, None
        multi = hasattr(model, "unimodal_heads")
        self.built_as = ("text LSTM over all 50 positions of fixed features, audio/vision means over the padded file array precomputed "
                         f"as MMSA's loader does, same fusion{' and unimodal heads' if multi else ''}, "
                         f"{'weighted L1 on the fused and unimodal labels' if multi else 'L1'}, default Adam per batch")

    @contextlib.contextmanager
    def reference_encoding(self, ref: RefBatch):
        modules = [sys.modules[name] for name in self.MODULES]
        saved = [module.encode_tfn_style for module in modules]
        for module in modules:
            module.encode_tfn_style = lambda model, batch: self.encode(ref)
        try:
            yield
        finally:
            for module, original in zip(modules, saved):
                module.encode_tfn_style = original

    def predict(self, ref: RefBatch) -> torch.Tensor:
        with self.reference_encoding(ref):
            return self.model(ref.as_batch()).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        self.optimizer.zero_grad()
        batch = ref.as_batch()
        with self.reference_encoding(ref):
            output = self.model(batch)
        loss = sum(sum(o(output, batch, EPOCH).values()) for o in self.objectives)
        loss.backward()
        self.optimizer.step()
        loss.item()  # as the reference's trainer logs it


def unmasked_batch(ref: RefBatch) -> Batch:
    """The reference's aligned inputs as a msakit batch with nothing masked: every one of the 50
    text positions counted (fixed features: zeros at padding, as the feature file) and every
    frame of the file's width, so msakit's aligned models step through the padding to position
    50 and read the states there, as the reference does."""
    b = len(ref)
    return Batch(index=ref.index, labels=ref.labels, text_ids=ref.ids, text_mask=torch.ones_like(ref.mask), audio=ref.audio,
                 audio_lengths=full_width(b, ref.audio), vision=ref.vision, vision_lengths=full_width(b, ref.vision))


def lstm_cell(lstm: nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``LSTMCell`` step with the weights of a one-layer ``nn.LSTM`` (the reference's cells)."""
    return torch.lstm_cell(x, state, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)


def mfn_loop(fusion: nn.Module, sequences: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """MMSA 2.2.1 ``MFN.forward``: an ``LSTMCell`` per modality, the delta-memory attention and
    the gated memory, one Python step per position (all 50), with msakit's MFN weights."""
    order, memory = fusion.order, fusion.memory
    b, steps = sequences[order[0]].shape[:2]
    h = {s: sequences[s].new_zeros(b, fusion.lstms[s].hidden_size) for s in order}
    c = {s: torch.zeros_like(h[s]) for s in order}
    mem = sequences[order[0]].new_zeros(b, memory.memory_dim)
    for t in range(steps):
        previous = torch.cat([c[s] for s in order], dim=1)
        for s in order:
            h[s], c[s] = lstm_cell(fusion.lstms[s], sequences[s][:, t], (h[s], c[s]))
        c_star = torch.cat([previous] + [c[s] for s in order], dim=1)
        attended = torch.softmax(fusion.attention(c_star), dim=1) * c_star
        proposal = torch.tanh(memory.proposal(attended))
        both = torch.cat([attended, mem], dim=1)
        mem = torch.sigmoid(memory.gamma1(both)) * mem + torch.sigmoid(memory.gamma2(both)) * proposal
    return dict(h), mem


def graph_mfn_loop(model: nn.Module, batch: Batch) -> ModelOutput:
    """MMSA 2.2.1 ``Graph_MFN.forward``: per position (all 50) an ``LSTMCell`` per modality, the
    singleton vertices, the dynamic fusion graph (its efficacies copied to the CPU at every step,
    as the reference records them) and the gated memory, with msakit's Graph-MFN weights."""
    from msakit.encoders.aligned import aligned_sequences

    sequences, _ = aligned_sequences(model, batch)
    order, memory = model.order, model.memory
    b, steps = sequences[order[0]].shape[:2]
    h = {s: sequences[s].new_zeros(b, model.lstms[s].hidden_size) for s in order}
    c = {s: torch.zeros_like(h[s]) for s in order}
    mem = sequences[order[0]].new_zeros(b, memory.memory_dim)
    for t in range(steps):
        singletons = []
        for s in order:
            previous = h[s]
            h[s], c[s] = lstm_cell(model.lstms[s], sequences[s][:, t], (h[s], c[s]))
            singletons.append(F.relu(model.singletons[s](torch.cat([previous, h[s]], dim=1))))
        top, efficacies = model.graph(singletons)
        efficacies.detach().cpu()
        proposal = torch.tanh(memory.proposal(top))
        both = torch.cat([top, mem], dim=1)
        mem = torch.sigmoid(memory.gamma1(both)) * mem + torch.sigmoid(memory.gamma2(both)) * proposal
    fused = torch.cat([h[s] for s in order] + [mem], dim=-1)
    return ModelOutput(predictions={"m": model.head(fused).squeeze(-1)}, features={"m": fused, **h})


class SameModelStyle:
    """The model's own forward on the reference's inputs (``make_batch``: nothing masked, text
    padded to 50 and frames at the file's width), the reference's per-step Python loops where it
    has them (``loop``), the model's losses (own instances), the reference trainer's clipping and
    PyTorch's default Adam over the reference's groups."""

    def __init__(self, model: nn.Module, objectives: list[nn.Module], accumulation: int, built_as: str, make_batch=unmasked_batch,
                 clip: tuple[str, float] | None = None, loop=None, extra_step_every: int = 0, fixed: FixedText | None = None):
        self.model, self.objectives, self.accumulation, self.built_as = model, objectives, accumulation, built_as
        self.fixed = fixed  # the reference's fixed text features (msakit's side may keep its frozen encoder)
        self.make_batch, self.clip, self.loop, self.extra_step_every = make_batch, clip, loop, extra_step_every
        self.pending = self.batches = 0
        self.optimizer = default_adam(model.parameter_groups())

    @contextlib.contextmanager
    def reference_paths(self):
        m = self.model
        text = m.text_model if self.fixed is not None else None
        if text is not None:
            m.text_model = self.fixed
        if self.loop is not None:
            owner, function = self.loop
            owner.forward = function  # an instance attribute: the class's forward, shadowed while the reference runs
        try:
            yield
        finally:
            if self.loop is not None:
                del owner.forward
            if text is not None:
                m.text_model = text

    def predict(self, ref: RefBatch) -> torch.Tensor:
        with self.reference_paths():
            return self.model(self.make_batch(ref)).predictions["m"]

    def step(self, ref: RefBatch) -> None:
        m = self.model
        if self.pending == 0:
            self.optimizer.zero_grad()
        batch = self.make_batch(ref)
        with self.reference_paths():
            output = m(batch)
        loss = sum(sum(o(output, batch, EPOCH).values()) for o in self.objectives)
        loss.backward()
        params = [p for p in m.parameters() if p.requires_grad]
        if self.clip and self.clip[0] == "value":
            nn.utils.clip_grad_value_(params, self.clip[1])
        self.pending += 1
        if self.pending == self.accumulation:
            if self.clip and self.clip[0] == "norm":
                nn.utils.clip_grad_norm_(params, self.clip[1])
            self.optimizer.step()
            self.pending = 0
        self.batches += 1
        if self.extra_step_every and self.batches % self.extra_step_every == 0:
            self.optimizer.step()  # TFR-Net's trainer: a step every batch and one more every update_epochs batches
        loss.item()  # as the reference's trainer logs it


def classic_reference(case: "Case", trainer: Trainer, fixed: FixedText | None, kind: str) -> object:
    model, accumulation = trainer.model, trainer.config.train.grad_accumulation
    style = functools.partial(SameModelStyle, fixed=fixed)
    objectives = model.build_objectives(trainer.data["train"], kind)
    if case.model in ("lf_dnn", "mlf_dnn", "mtfn", "mlmf"):
        return SubnetStyle(model, fixed, objectives)
    common = "fixed features and the 50 aligned frames, all 50 positions run (nothing masked or packed)"
    if case.model == "ef_lstm":
        return style(model, objectives, accumulation, f"{common}, one deep LSTM, its state at position 50, L1, default Adam per batch")
    if case.model == "mfn":
        loop = (model.fusion, lambda sequences, lengths: mfn_loop(model.fusion, sequences))
        return style(model, objectives, accumulation, f"{common}, the reference's LSTMCell loop over 50 steps (attention and memory per step), L1, "
                              "default Adam per batch", loop=loop)
    if case.model == "graph_mfn":
        loop = (model, lambda batch: graph_mfn_loop(model, batch))
        return style(model, objectives, accumulation, f"{common}, the reference's LSTMCell loop over 50 steps (graph, efficacies to the CPU, memory "
                              "per step), L1, default Adam per batch", loop=loop)
    if case.model == "mfm":
        loop = (model.fusion, lambda sequences, lengths: mfn_loop(model.fusion, sequences))
        return style(model, objectives, accumulation, f"{common}, the inner MFN as the reference's LSTMCell loop, the decoders over all 50 "
                              "steps, L1 + reconstruction + MMD, default Adam per batch", loop=loop)
    if case.model == "mctn":
        return style(model, objectives, accumulation, f"{common}, seq2seq translations over all 50 steps, L1 + 0.1 translation MSEs, norm clip "
                              f"{model.config.grad_clip} of all parameters, default Adam per batch", clip=("norm", model.config.grad_clip))
    if case.model == "tfr_net":
        return style(model, objectives, accumulation, "stock MiniLM forward over 50 tokens (fine-tuned) for the incomplete and the complete "
                              "text, file-width frames, nothing masked, L1 + reconstruction, value clip after each backward, default Adam per batch "
                              "and once more every 4 batches (its update_epochs loop)", make_batch=padded_batch,
                              clip=("value", model.config.grad_clip), extra_step_every=4)
    raise ValueError(case.model)


# ---- one case ------------------------------------------------------------------------------
@dataclass
class Case:
    label: str
    model: str
    # "minilm": MiniLM fine-tuned on both sides; "fixed": fixed 384-d features on both sides;
    # "frozen": msakit's default for TFN/LMF/MulT (frozen MiniLM, token states cached, the cache
    # warmed first and its one-off cost timed apart) against the reference reading fixed features.
    text: str
    aligned: bool = False
    kind: str = "mosi"  # "sims": the SIMS-shaped synthetic set (msakit synth --kind sims), read as CH-SIMS


CASES = {
    "tfn": [Case("TFN", "tfn", "frozen"), Case("TFN", "tfn", "fixed"), Case("TFN", "tfn", "minilm")],
    "lmf": [Case("LMF", "lmf", "frozen"), Case("LMF", "lmf", "fixed"), Case("LMF", "lmf", "minilm")],
    "mult": [Case("MulT", "mult", "frozen"), Case("MulT", "mult", "fixed")],
    "misa": [Case("MISA", "misa", "minilm")],
    "mag_bert": [Case("MAG-BERT", "mag_bert", "minilm", aligned=True)],
    "mmim": [Case("MMIM", "mmim", "minilm")],
    "self_mm": [Case("Self-MM", "self_mm", "minilm")],
    "almt": [Case("ALMT", "almt", "minilm")],
    "tetfn": [Case("TETFN", "tetfn", "minilm")],
    "cenet": [Case("CENET", "cenet", "minilm")],
    "lnln": [Case("LNLN", "lnln", "minilm")],
    "kuda": [Case("KuDA", "kuda", "minilm")],
    "dmd": [Case("DMD", "dmd", "minilm", aligned=True)],
    "dlf": [Case("DLF", "dlf", "minilm", aligned=True)],
    "confede": [Case("ConFEDE", "confede", "minilm")],
    # The classic models read fixed features in MMSA (use_bert false); msakit's default is the frozen
    # MiniLM with cached token states ("frozen"), and "fixed" puts the same features on both sides.
    **{model: [Case(label, model, text, **where) for text in ("frozen", "fixed")] for model, label, where in (
        ("ef_lstm", "EF-LSTM", {"aligned": True}), ("lf_dnn", "LF-DNN", {}), ("mlf_dnn", "MLF-DNN", {"kind": "sims"}),
        ("mtfn", "MTFN", {"kind": "sims"}), ("mlmf", "MLMF", {"kind": "sims"}), ("mfn", "MFN", {"aligned": True}),
        ("graph_mfn", "Graph-MFN", {"aligned": True}), ("mfm", "MFM", {"aligned": True}), ("mctn", "MCTN", {"aligned": True}))},
    "tfr_net": [Case("TFR-Net", "tfr_net", "minilm")],
}


def build_reference_sides(case: Case, trainer: Trainer, fixed: FixedText | None) -> dict[str, object]:
    model = trainer.model
    if case.model == "tfn":
        return {"reference": TFNStyle(model, fixed)}
    if case.model == "lmf":
        return {"reference": LMFStyle(model, fixed)}
    if case.model == "mult":
        return {"reference": MulTStyle(model, fixed, trainer.config.train.grad_accumulation)}
    if case.model == "misa":
        return {
            "reference": MISAStyle(model, model.build_objectives(trainer.data["train"], "mosi"), "text"),
            "reference_own_lengths": MISAStyle(model, model.build_objectives(trainer.data["train"], "mosi"), "own"),
        }
    if case.model == "mag_bert":
        return {"reference": MAGStyle(model)}
    if case.model == "mmim":
        return {"reference": MMIMStyle(model)}
    if case.model == "self_mm":
        return {"reference": SelfMMStyle(model, model.build_objectives(trainer.data["train"], "mosi"), trainer.config.train.grad_accumulation)}
    if case.model == "almt":
        return {"reference": ALMTStyle(model)}
    if case.model == "tetfn":
        return {"reference": TETFNStyle(model, model.build_objectives(trainer.data["train"], "mosi"), trainer.config.train.grad_accumulation)}
    if case.model == "cenet":
        return {"reference": CENETStyle(model)}
    if case.model == "lnln":
        return {"reference": LNLNStyle(model, trainer.tokenizer.unk_token_id)}
    if case.model == "kuda":
        return {"reference": KuDAStyle(model)}
    if case.model in ("dmd", "dlf"):
        objectives = model.build_objectives(trainer.data["train"], "mosi")
        return {"reference": DecoupledStyle(model, objectives, trainer.config.train.grad_accumulation, case.label)}
    if case.model == "confede":
        builder = trainer.builders["train"]
        steps = (len(builder) + trainer.config.train.batch_size - 1) // trainer.config.train.batch_size
        inputs, texts = ReferenceInputs(trainer), list(builder.split.raw_text)
        return {name: ConFEDEStyle(model, model.build_objectives(trainer.data["train"], "mosi"), inputs, texts, trainer.tokenizer, steps, partners)
                for name, partners in (("reference", True), ("reference_no_partners", False))}
    return {"reference": classic_reference(case, trainer, fixed, case.kind)}


def prepare_case(case: Case, data, workdir: Path, threads: int = 1, model_overrides: dict | None = None):
    """msakit's Trainer for ``case`` (MOSI defaults; ``model_overrides`` on top) and the
    reference-style sides sharing its model's weights."""
    overrides = {"train": {"num_threads": threads, "progress": False, "seed": 1111}, "model": dict(model_overrides or {})}
    if case.text == "minilm" and case.model in ("tfn", "lmf", "mult"):
        overrides["model"].setdefault("text_finetune", True)  # their default is a frozen encoder
    config = resolve_config(case.model, kind=case.kind, data_path=data.source, overrides=overrides)
    trainer = Trainer(config, workdir / f"run_{case.model}_{case.text}", data=data)
    fixed = None
    if case.text == "fixed":  # the reference reads fixed text features: so does msakit's model here
        fixed = FixedText(random_text_table(trainer.tokenizer.vocab_size, trainer.model.text_model.hidden_size))
        trainer.model.text_model = fixed
        trainer.optimizer = torch.optim.Adam(trainer.model.parameter_groups(), fused=True)  # as the Trainer builds it
    elif case.text == "frozen":  # msakit keeps its frozen encoder; the reference reads fixed features of its width
        fixed = FixedText(random_text_table(trainer.tokenizer.vocab_size, trainer.model.text_model.hidden_size))
    return trainer, MsakitSide(trainer), build_reference_sides(case, trainer, fixed)


def unpadded_differences(trainer: Trainer, msakit: MsakitSide, references: dict) -> tuple[int, dict[str, float]]:
    """Eval-mode predictions of both sides on the same full-length samples: (length, max |diff| per side)."""
    trainer.model.eval()
    batch, ref = unpadded_pair(trainer)
    with torch.no_grad():
        ours = msakit.predict(batch)
        differences = {name: max_abs_difference(ours, side.predict(ref)) for name, side in references.items()}
    return int(batch.text_ids.shape[1]), differences


def run_case(case: Case, data, workdir: Path, args) -> dict:
    trainer, msakit, references = prepare_case(case, data, workdir, args.threads)
    config = trainer.config
    builder, inputs = trainer.builders["train"], ReferenceInputs(trainer)
    n, batch_size = len(builder), config.train.batch_size

    # 1. Same predictions on unpadded input (not for "frozen": the two sides read different text states).
    check_length, differences, warm_ms = 0, {name: None for name in references}, None
    if case.text != "frozen":
        check_length, differences = unpadded_differences(trainer, msakit, references)
        print(f"  unpadded input ({check_length} tokens/frames): max |msakit - reference| = "
              + ", ".join(f"{k} {v:.1e}" for k, v in differences.items()), flush=True)
        assert max(differences.values()) < 1e-4, differences
    else:  # the one-off cost of encoding every training sample once (the first epoch pays it)
        started = time.perf_counter()
        for rows in np.array_split(np.arange(n), max(1, n // batch_size)):
            b = builder.make_batch(rows)
            trainer.model.text_model.token_states(b.text_ids, b.text_mask)
        warm_ms = (time.perf_counter() - started) / n * 1e3
        print(f"  cache warmed: {warm_ms:.2f} ms per training sample, once", flush=True)

    # 2. Training batches, built up front (msakit's batch building timed on its own).
    total = args.warmup + args.batches
    order = np.concatenate([builder.order(True, 1111, epoch) for epoch in range(1, 2 + total * batch_size // n)])
    chosen = [order[i * batch_size : (i + 1) * batch_size] for i in range(total)]
    started = time.perf_counter()
    msakit_batches = [builder.make_batch(r) for r in chosen]
    build_seconds = time.perf_counter() - started
    ref_batches = [inputs.take(r) for r in chosen]
    trainer.model.train()

    def msakit_step(i: int) -> int:
        msakit.step(msakit_batches[i])
        return len(chosen[i])

    def reference_step(side):
        def run(i: int) -> int:
            side.step(ref_batches[i])
            return len(chosen[i])
        return run

    steps = {"msakit": msakit_step, **{name: reference_step(side) for name, side in references.items()}}
    timed = alternate(steps, args.batches, args.warmup)
    per_s = {name: timed["samples"][name] / timed["seconds"][name] for name in steps}
    result = {
        "model": case.model,
        "label": case.label,
        "text": {"fixed": "fixed 384-d features on both sides (MMSA's own protocol for this model)",
                 "frozen": "msakit: its default frozen MiniLM, token states cached (cache warmed first); reference: fixed 384-d features (MMSA's protocol)",
                 "minilm": "packaged MiniLM, fine-tuned on both sides"}[case.text],
        "cache_warm_ms_per_sample_once": warm_ms,
        "batch_size": batch_size,
        "grad_accumulation": config.train.grad_accumulation,
        "aligned_data": case.aligned,
        "data_kind": case.kind,
        "timed_batches": args.batches,
        "warmup_batches": args.warmup,
        "unpadded_check_length": check_length,
        "unpadded_max_abs_difference": differences,
        "samples_per_s": per_s,
        "ms_per_sample": timed["ms_per_sample"],
        "msakit_speed_over": {name: per_s["msakit"] / per_s[name] for name in references},
        "msakit_batch_building_ms_per_sample": build_seconds / sum(len(r) for r in chosen) * 1e3,
        "mean_msakit_text_tokens": float(np.mean([b.text_ids.shape[1] for b in msakit_batches[args.warmup:]])),
        "reference_built_as": {name: side.built_as for name, side in references.items()},
    }
    print("  samples/s: " + ", ".join(f"{k} {v:.1f}" for k, v in per_s.items())
          + "; msakit speed / reference: " + ", ".join(f"{k} {v:.2f}x" for k, v in result["msakit_speed_over"].items()), flush=True)
    return result


VARIANTS = {"reference_own_lengths": "reference, frames' own lengths", "reference_no_partners": "reference without the partner passes"}


def _difference(value) -> str:
    return "n/a (the sides read different text states)" if value is None else f"{value:.1e}"


def markdown(payload: dict) -> str:
    lines = [
        "# Training speed per sample: msakit against the reference framework's way of running each model",
        "",
        f"Made by `{payload['command']}` (commit {payload['commit']}, {payload['date']}), on {payload['machine']['cpu']}, "
        f"{payload['threads']} torch thread; default synthetic data ({payload['train_samples']} training samples; MAG-BERT and the aligned-only "
        "models on its aligned layout, MLF-DNN/MTFN/MLMF on the SIMS-shaped set of `msakit synth --kind sims`). "
        "Both sides share one set of weights and alternate batch by batch; see `benchmarks/model_speed.py` for how each reference side is built.",
        "",
        "| model | text | batch | msakit samples/s | reference-style samples/s | msakit speed / reference | msakit s/epoch (implied) | msakit text cache fill, ms per training sample, once | predictions on unpadded input, max abs diff | reference side |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        for name in r["msakit_speed_over"]:
            text = ("fixed features" if r["text"].startswith("fixed") else "msakit frozen MiniLM (cached) vs fixed features"
                    if r["text"].startswith("msakit") else "MiniLM, fine-tuned")
            label = r["label"] + ("" if name == "reference" else f" ({VARIANTS.get(name, name)})")
            lines.append(
                f"| {label} | {text} | {r['batch_size']} | {r['samples_per_s']['msakit']:.1f} | {r['samples_per_s'][name]:.1f} | "
                f"**{r['msakit_speed_over'][name]:.2f}x** | {payload['train_samples'] / r['samples_per_s']['msakit']:.1f} | "
                f"{'-' if r['cache_warm_ms_per_sample_once'] is None else format(r['cache_warm_ms_per_sample_once'], '.1f')} | "
                f"{_difference(r['unpadded_max_abs_difference'][name])} | {r['reference_built_as'][name]} |"
            )
    lines += [
        "",
        "msakit speed / reference > 1: msakit trains more samples per second. *s/epoch (implied)*: the training split's size over "
        "msakit's samples/s (steps only; batch building is measured apart, in the JSON). What the numbers do and do not show is "
        "written by hand in `READINGS.md`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per side first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="model_speed", help="result files: results/NAME.json and NAME.md")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in CASES]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)

    results = []
    with tempfile.TemporaryDirectory(prefix="msakit-model-speed-") as tmp:
        workdir = Path(tmp)
        datasets = {}
        for aligned in (False, True):
            path = write_synthetic(workdir / f"synthetic_{'aligned' if aligned else 'unaligned'}.pkl", SyntheticSpec(aligned=aligned))
            datasets[aligned, "mosi"] = read_mmsa_pickle(path, kind="mosi")
        if any(case.kind == "sims" for model in models for case in CASES[model]):  # msakit synth --kind sims
            datasets[False, "sims"] = read_mmsa_pickle(write_synthetic(workdir / "synthetic_sims.pkl", sims_spec()), kind="sims")
        for model in models:
            for case in CASES[model]:
                print(f"{case.label}, text: {case.text}", flush=True)
                results.append(run_case(case, datasets[case.aligned, case.kind], workdir, args))
                payload = {
                    "what": "training time per sample of each model: msakit's Trainer step against a reference-style step (MMSA 2.2.1's "
                            "inputs, padding, passes, clipping and optimiser) sharing the same weights, alternated batch by batch",
                    "threads": args.threads,
                    "train_samples": len(datasets[False, "mosi"]["train"]),
                    "results": results,
                }
                path = write_result(args.name, payload)  # after every case: nothing lost if a later one fails
    written = json.loads(path.read_text())
    (RESULTS / f"{args.name}.md").write_text(markdown(written))
    print(f"wrote {RESULTS / (args.name + '.md')}")


if __name__ == "__main__":
    main()
