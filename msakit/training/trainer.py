"""One trainer for every model.

Read ``fit`` top to bottom for the order of operations. Per training step: forward; every
objective's loss with the current state; backward; every objective's ``after_step`` hook
(ULGM updates its labels, memory and centres here, in the order the paper gives); an
optimiser step every ``grad_accumulation`` batches. Per epoch: validate, keep the best
weights by validation MAE of ``ŷ_m``, save a resume checkpoint, stop early after
``early_stop`` epochs without improvement. Finally: reload the best weights and test.

A model that asks for a text stage (``needs_text_stage``: Self-MM's ``model.fusion=text_first``)
gets its own configuration trained on text alone first, in ``RUN/text_stage`` (a run like any
other, resumable), hands the result to ``adopt_text_model``, and starts its epochs from there,
with the adopted model's validation score as epoch 0. A model that declares pretraining stages
(``pretraining_stages``: KuDA's knowledge pretraining) gets each trained the same way first, in
``RUN/stage_<name>``, handed to ``adopt_pretrained``, and recorded in ``results.json``'s ``stages``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from msakit.config import RunConfig, config_differences, config_from_dict, fit_defaults_to_data
from msakit.errors import ConfigError
from msakit.data import MODALITIES, FeatureData, load_dataset
from msakit.data.batching import BatchBuilder
from msakit.data.folds import parse_select
from msakit.errors import ConfigError, DataError, DivergedError, ExistingRunError, MissingFileError, MsakitError, RunDirError
from msakit.metrics import regression_metrics
from msakit.models import InputDims, get_model_class
from msakit.objectives.alignment import CovarianceAlignment, covariance_distances, parse_pairs
from msakit.training import distributed
from msakit.training.checkpoint import (
    atomic_write,
    check_state_matches,
    load_model,
    read_json,
    has_progress,
    remove_partial_files,
    save_best_model,
    write_json,
)


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]  # on test if the data has a test split, else on validation
    evaluated_split: str
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    ulgm_labels: dict | None = None  # ULGM's generated unimodal labels vs annotated ones (Trainer.ulgm_label_comparison)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={name!r}: unsupported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} requested but CUDA is not available here; use --device cpu or auto")
    return device


def resolve_precision(name: str, device: torch.device) -> tuple[torch.dtype | None, "torch.amp.GradScaler | None"]:
    """``(autocast dtype or None for fp32, loss scaler or None)`` for ``train.precision``.

    ``auto`` is fp32 on CPU (unchanged behaviour) and, on CUDA, bf16 where the card supports
    it, else fp16 with a dynamic loss scaler. Mixed precision is CUDA-only: CPU autocast has
    no low-precision LSTM kernel (oneDNN refuses it)."""
    if name == "auto":
        if device.type != "cuda":
            return None, None
        name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp32":
        return None, None
    if device.type != "cuda":
        from msakit.errors import ConfigError

        raise ConfigError(f"train.precision={name}: mixed precision needs a CUDA device (this run is on {device}); use auto or fp32")
    if name == "bf16":
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler(device.type)


def _float_output(output):
    """Model outputs back to float32, so every loss and ULGM's state stay in full precision."""
    output.predictions = {k: v.float() for k, v in output.predictions.items()}
    output.features = {k: v.float() for k, v in output.features.items()}
    return output


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Builds data, model and objectives for one run and trains it in ``run_dir``."""

    def __init__(self, config: RunConfig, run_dir: str | Path, data: FeatureData | None = None, fit_defaults: bool = True,
                 text_encoder_from: str | Path | None = None, frozen_text_from: str | Path | None = None,
                 selection: dict | None = None):
        """``text_encoder_from``: the run whose text encoder a ``text_stage=concat`` text stage
        reads (fusion=auto's concat candidate); ``frozen_text_from``: a run whose text encoder
        this run's model takes, frozen (that text stage itself); ``selection``: the epochs (and
        candidate) that ``train.select=kfold:K`` chose for this run and its stages."""
        self.config = config
        self.run_dir = Path(run_dir)
        self.selection = selection
        self.text_encoder_from = Path(text_encoder_from) if text_encoder_from is not None else None
        t = config.train
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        self.device = resolve_device(t.device)
        # torchrun: this process's place in the run (msakit.training.distributed); one process: inactive
        self.dist = distributed.context(self.device.type)
        self.device = self.dist.device(self.device)
        if not self.dist.is_main:  # rank 0 alone reports
            config = self.config = dataclasses.replace(config, train=dataclasses.replace(config.train, progress=False))
        seed_everything(t.seed)

        started = time.perf_counter()
        self._created = started
        self.data = data if data is not None else load_dataset(config.data.path, config.data.kind, config.data.modalities)
        # Where the run's time goes (load, setup, train, validate, test), in results.json.
        self.timings = {"load_s": time.perf_counter() - started if data is None else 0.0}
        chosen = config.data.modalities or self.data.modalities
        unknown = [m for m in chosen if m not in MODALITIES]
        if unknown:
            raise ConfigError(f"data.modalities: unknown {unknown}; use any of t (text), a (audio), v (vision)")
        self.modalities = tuple(m for m in MODALITIES if m in chosen)  # canonical order t, a, v
        if not self.modalities:
            raise DataError(f"{self.data.source}: no modality is present in every split")
        for split_name in ("train", "valid"):
            if split_name not in self.data.splits:
                raise DataError(f"{self.data.source}: training needs a {split_name!r} split; it has {sorted(self.data.splits)}")

        for split_name in ("valid", "test"):
            if split_name in self.data.splits and len(self.data[split_name]) < 2:
                raise DataError(
                    f"{self.data.source}: the {split_name!r} split has {len(self.data[split_name])} sample(s); "
                    "its metrics (MAE, Corr) need at least 2: move samples into it"
                )
        # Defaults naming a modality this run lacks are dropped; msakit.train does it itself with
        # the user's overrides at hand (fit_defaults=False here), so what remains was asked for.
        if fit_defaults:
            config = self.config = fit_defaults_to_data(config, self.modalities, quiet=True)
        t = config.train
        pairs = parse_pairs(config.alignment.pairs, config.alignment.weight)
        missing = sorted({s for i, j, _ in pairs for s in (i, j)} - set(self.modalities))
        if missing:
            raise ConfigError(
                f"alignment.pairs={config.alignment.pairs!r} aligns {', '.join(missing)}, which this run does not use "
                f"(modalities {','.join(self.modalities)}); choose pairs among the modalities used, or alignment.pairs=none"
            )

        # model.fusion=auto: fit() trains each candidate as a run of its own (RUN/fusion_<name>)
        # from the data as given and keeps the best; everything below is still built here, so a
        # bad setting is refused before any training.
        self.candidates = get_model_class(config.model).fusion_candidates(config.model_config, self.modalities)
        self.raw_data = self.data
        # Audio/vision z-scored with training-split statistics, stored with the best model.
        self.standardizer = None
        if config.data.standardize and set(self.modalities) & {"a", "v"}:
            from msakit.data.standardize import Standardizer

            # A model may read a modality as it is (UNSTANDARDIZED: mmml's waveform, which z-score clipping would distort).
            scaled = tuple(m for m in self.modalities if m not in getattr(get_model_class(config.model), "UNSTANDARDIZED", ()))
            self.standardizer = Standardizer.fit(self.data["train"], scaled, config.data.standardize_clip, config.data.empty_as_absent)
        # All-zero audio/vision samples (data.empty_as_absent): found on the raw frames, before
        # standardisation, and given to the batches as absent (ULGM skips them).
        self.empty = {name: {} for name in self.data.splits}
        if config.data.empty_as_absent:
            from msakit.data.standardize import empty_rows

            for name, split in self.data.splits.items():
                for m, (frames, lengths) in (("a", (split.audio, split.audio_lengths)), ("v", (split.vision, split.vision_lengths))):
                    if m in self.modalities and frames is not None:
                        self.empty[name][m] = empty_rows(frames, np.asarray(lengths))
        if self.standardizer is not None:
            self.data = self.standardizer.apply_data(self.data, lazy=True)  # batch by batch: no copy of the data

        model_class = get_model_class(config.model)
        model_class.check_data(self.data, self.modalities)
        self.context = check_context(config, self.data, self.modalities)
        dims = InputDims.from_split(self.data["train"], self.modalities)
        if dims.audio_dim or dims.vision_dim:  # data.context on audio/vision: the neighbours' mean as extra columns
            dims = dataclasses.replace(dims, audio_dim=dims.audio_dim and self.context.frame_width("a", dims.audio_dim),
                                       vision_dim=dims.vision_dim and self.context.frame_width("v", dims.vision_dim))
        kwargs, self.tokenizer = {}, None
        if "t" in self.modalities and model_class.uses_text_encoder:
            from msakit.encoders.text import TextEncoder, load_tokenizer, resolve_encoder_path

            encoder_path = resolve_encoder_path(config.model_config.text_encoder)
            self.tokenizer = load_tokenizer(encoder_path)
            kwargs["text_encoder"] = TextEncoder.from_pretrained(encoder_path)
        self.model = model_class(config.model_config, dims, **kwargs).to(self.device)
        if frozen_text_from is not None:
            self._adopt_frozen_text_encoder(Path(frozen_text_from))
        if any(self.context.windowed(m) for m in self.modalities):  # data.context_encoder=lstm (msakit/encoders/context.py)
            from msakit.encoders.context import attach_utterance_context, context_sizes

            attach_utterance_context(self.model, context_sizes(self.context, self.model), config.data.context_hidden)
            self.model.utterance_context.to(self.device)
        if frozen_text_from is None and self.context.reads("t") and not self.context.windowed("t") and getattr(getattr(self.model, "text_model", None), "frozen", False) and self.dist.is_main:
            # Measured: TFN on the MOSI transcripts, 82.25 -> 75.15 Acc-2 with one neighbour a side (train guide).
            print(f"warning: data.context={self.context.k} joins the neighbours' transcripts to each utterance, but {config.model}'s "
                  "text encoder is frozen: its first-token state is then mostly the neighbours' and cannot learn to pick the scored "
                  "utterance out (this lowered TFN's accuracy on CMU-MOSI); set data.context_encoder=lstm (the neighbours through an "
                  "utterance-level LSTM, which raised it), model.text_finetune=true, or data.context_modalities=a,v",
                  file=sys.stderr)
        objectives = self.model.build_objectives(self.data["train"], config.data.kind)
        if pairs:  # plug-and-play: any model exposing per-modality features can be aligned
            objectives.append(CovarianceAlignment(pairs, self.model.exposed_feature_dims()))
        self.objectives = [o.to(self.device) for o in objectives]
        # The fused kernel applies the same Adam update in one pass (several times faster than
        # the per-tensor loop on CPU for BERT-sized parameter lists).
        groups = self.model.parameter_groups()
        if hasattr(self.model, "utterance_context"):  # a model listing its own groups does not know the context encoder
            listed = {id(p) for g in groups for p in g["params"]}
            missing = [p for p in self.model.utterance_context.parameters() if id(p) not in listed]
            if missing:
                groups.append({"name": "context", "params": missing, "lr": groups[-1].get("lr", 1e-3),
                               "weight_decay": groups[-1].get("weight_decay", 0.0)})
        self.optimizer = torch.optim.Adam(groups, fused=True)
        # The model's reference clipping (msakit.models.base.GradientClipping), applied here only.
        self.clipping = self.model.gradient_clipping()

        from msakit.data.corruption import parse_modality_dropout

        self.modality_dropout = parse_modality_dropout(t.modality_dropout)
        unused = [m for m in self.modality_dropout if m not in self.modalities]
        if unused:
            raise ConfigError(f"train.modality_dropout={t.modality_dropout!r}: the run does not use {unused} (it uses {list(self.modalities)})")
        from msakit.encoders.text import text_token_limit

        buckets = self.model.length_buckets(t.batch_size) if hasattr(self.model, "length_buckets") else None  # training batches only
        self.builders = {
            name: BatchBuilder(split, self.modalities, self.tokenizer, text_token_limit(self.model, config.data.max_text_tokens),
                               empty=self.empty[name], context=self.context, buckets=buckets if name == "train" else None)
            for name, split in self.data.splits.items()
        }
        # CUDA: mixed precision, page-locked batches copied without blocking. CPU: unchanged.
        self.amp_dtype, self.scaler = resolve_precision(t.precision, self.device)
        self.pin_memory = self.device.type == "cuda"
        self._forward = None  # the model, or DistributedDataParallel over it (wrapped at the first epoch)
        self.dist.seed_rank(t.seed)
        self.timings["setup_s"] = time.perf_counter() - started - self.timings["load_s"]

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _optimizer_step(self) -> None:
        if self.scaler is not None:  # the model's clipping sees true gradients
            self.scaler.unscale_(self.optimizer)
        if self.clipping is not None and (self.clipping.when == "step" or self.scaler is not None):
            self.clipping.apply(self.model)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)  # skips the step if fp16 gradients overflowed
            self.scaler.update()

    def clip_after_backward(self) -> None:
        """A clipping declared for every backward pass (with fp16 scaling: at the step, unscaled)."""
        if self.clipping is not None and self.clipping.when == "backward" and self.scaler is None:
            self.clipping.apply(self.model)

    # ---- one epoch of training -------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        t = self.config.train
        self.model.train()
        builder = self.builders["train"]
        totals: dict[str, float] = {}
        seen, started = 0, time.perf_counter()
        if self._forward is None:
            self._forward = self.dist.wrap(self.model)
        if self.dist.active:  # this rank's share of each global batch
            batches = self.dist.shard_batches(builder, t.batch_size, seed=t.seed, epoch=epoch, modality_dropout=self.modality_dropout)
        else:
            batches = builder.batches(t.batch_size, shuffle=True, seed=t.seed, epoch=epoch, modality_dropout=self.modality_dropout)
        bar = tqdm(
            batches,
            total=builder.num_batches(t.batch_size),
            desc=f"epoch {epoch}",
            disable=not t.progress,
            leave=False,
            dynamic_ncols=True,
            # Redirected to a log file, per-batch redraws bury the epoch lines: refresh rarely.
            mininterval=0.1 if sys.stderr.isatty() else 30.0,
        )
        pending = 0  # batches whose gradients are accumulated but not yet applied
        for step, batch in enumerate(bar):
            batch = (batch.pin_memory() if self.pin_memory else batch).to(self.device)
            if pending == 0:
                self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                output = self._forward(batch)
            if self.amp_dtype is not None:
                output = _float_output(output)
            if self.dist.active:  # every objective sees the whole global batch, on every rank
                output, batch = self.dist.gather(output, batch)
            terms = {}
            for objective in self.objectives:
                terms.update(objective(output, batch, epoch))
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise DivergedError(
                    f"epoch {epoch}, batch {step}: the loss is {loss.item()} ({ {k: float(v) for k, v in terms.items()} }). "
                    f"The last good checkpoint is {self.run_dir / 'last.pt'}; lower the learning rates and --resume."
                )
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            self.clip_after_backward()
            for objective in self.objectives:
                if hasattr(objective, "after_step"):
                    objective.after_step(output, batch, epoch)
            pending += 1
            if pending == t.grad_accumulation:
                self._optimizer_step()
                pending = 0
            n = len(batch)
            seen += n
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) * n
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach()) * n
            bar.set_postfix(loss=f"{totals['loss'] / seen:.4f}", samples_s=f"{seen / (time.perf_counter() - started):.1f}", refresh=False)
        if pending:
            self._optimizer_step()  # the epoch's last, partial accumulation window
        bar.close()
        elapsed = time.perf_counter() - started
        summary = {f"train_{k}": v / seen for k, v in totals.items()}
        summary["train_seconds"] = elapsed
        summary["train_samples_per_s"] = seen / elapsed
        return summary

    # ---- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, split: str, model=None, features: dict | None = None) -> dict[str, np.ndarray]:
        with self._autocast():
            return predict_builder(model or self.model, self.builders[split], self.config.train.eval_batch_size, self.device, features)

    def evaluate(self, split: str, model=None) -> dict[str, float]:
        predictions = self.predict(split, model)
        return regression_metrics(predictions["m"], self.data[split].labels["m"], self.config.data.kind)

    # ---- the whole run --------------------------------------------------------------------
    def fit(self, resume: bool = False, callback=None) -> RunResult:
        """Train, validate each epoch, test the best weights. ``callback(epoch, record)``, if
        given, is called after each epoch is saved (``record`` holds ``valid_MAE`` etc.); it
        may raise to stop the run there (a sweep's pruner does)."""
        t = self.config.train
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunDirError(f"{self.run_dir}: cannot create the run directory ({error.strerror or error})") from None
        # Temporary files of a write that a kill interrupted: never valid, often hundreds of MB.
        if self.dist.is_main:
            remove_partial_files(self.run_dir)
        restart = False  # text stage (or folds) done, this run never saved an epoch: it starts again
        if self.selection is None and parse_select(t.select):
            self._cross_validate(resume)
            if not self.candidates:  # killed after the folds, before this run's first epoch: it starts
                restart = resume and not (self.run_dir / "last.pt").exists()
                if restart:
                    self._refuse_other_config()
                resume = resume and not restart
        if self.candidates:
            return self._fit_choosing(resume, callback)
        state = {"epoch": 0, "best_mae": math.inf, "best_epoch": 0, "stale": 0, "history": []}
        text_stage = self.model.needs_text_stage()
        if text_stage:
            # model.fusion=text_first: this configuration on text alone first (RUN/text_stage),
            # then its text prediction, frozen, under the audio/vision correction trained here.
            self._refuse_existing(resume)
            self.text_stage = self._text_stage()
            self.model.adopt_text_model(self.text_stage["model"])
            from msakit.encoders.context import adopt_text_context

            adopt_text_context(self.model, self.text_stage["model"])  # data.context_encoder=lstm on text: the stage's LSTM too
            seed_everything(t.seed)  # the second stage starts from the seed, as a run of its own
            self.dist.seed_rank(t.seed)
            # Killed in (or right after) the text stage: nothing of the second stage to resume.
            restart = restart or (resume and not (self.run_dir / "last.pt").exists())
            if restart:
                self._refuse_other_config()
            resume = resume and not restart
        if self.model.pretraining_stages():  # e.g. KuDA's knowledge pretraining: each stage a run of its own
            resume, restart = self._pretraining_stages(resume)
        if resume:
            state = self._load_resume_state()
            # A kill between an epoch's metrics line and its checkpoint leaves a line for an
            # epoch that will run again: keep exactly the epochs the checkpoint holds.
            lines = "".join(json.dumps(record) + "\n" for record in state["history"])
            self.dist.barrier()  # every rank has read the run before rank 0 writes
            if self.dist.is_main:
                atomic_write(self.run_dir / "metrics.jsonl", lambda p: p.write_text(lines))
        else:
            if (self.run_dir / "config.json").exists() and not restart:  # restart: the same config, checked above
                raise ExistingRunError(
                    f"{self.run_dir} already holds a run; pass resume=True (--resume) to continue it, "
                    "or choose a new run directory"
                )
            self.dist.barrier()  # every rank has checked the run directory before rank 0 writes
            if self.dist.is_main:
                write_json(self.run_dir / "config.json", self.config.to_dict())
                (self.run_dir / "metrics.jsonl").write_text("")
            if text_stage:  # epoch 0: the frozen text prediction alone (the correction starts at zero)
                started = time.perf_counter()
                valid = self.dist.from_main(self.evaluate("valid"))
                state.update(best_mae=valid["MAE"], best_epoch=0, text_stage=True)
                self._save_best()
                if t.progress:
                    tqdm.write(f"epoch   0  the text stage's prediction: valid MAE {valid['MAE']:.4f}  Corr {valid['Corr']:.4f}  "
                               f"({time.perf_counter() - started:.1f} s)  *best")

        epoch = state["epoch"]
        keep_last = self._fixed_epochs() is not None  # kfold-chosen epochs: the last one is the run's
        while epoch < self._max_epochs() and (keep_last or state["stale"] < t.early_stop):
            epoch += 1
            record = {"epoch": epoch, **self.train_epoch(epoch)}
            started = time.perf_counter()
            fitted = self.model.fit_to_validation(lambda: self.predict("valid"), self.data["valid"].labels["m"])
            record.update(fitted or {})
            valid = self.dist.from_main(self.evaluate("valid"))  # rank 0's decides for all
            record["valid_seconds"] = time.perf_counter() - started
            record.update({f"valid_{k}": v for k, v in valid.items()})
            improved = keep_last or valid["MAE"] < state["best_mae"]
            if improved:
                state.update(best_mae=valid["MAE"], best_epoch=epoch, stale=0)
                self._save_best()
            else:
                state["stale"] += 1
            state["epoch"] = epoch
            state["history"].append(record)
            if self.dist.is_main:
                with open(self.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
            self._save_resume_state(state)
            if t.progress:
                tqdm.write(
                    f"epoch {epoch:3d}  loss {record['train_loss']:.4f}  valid MAE {valid['MAE']:.4f}  "
                    f"Corr {valid['Corr']:.4f}  {record['train_samples_per_s']:.1f} samples/s"
                    + ("  *best" if improved and not keep_last else "")
                )
            if callback is not None:
                callback(epoch, record)
        return self._finish(state)

    def _fit_choosing(self, resume: bool, callback) -> RunResult:
        """``model.fusion=auto``: each candidate trained (or finished) in ``RUN/fusion_<name>``
        as the run its own config gives, bit for bit; the one with the lowest validation MAE
        becomes this run (its ``best/``, predictions, metrics), the others stay as results."""
        import dataclasses
        import shutil

        saved = self.run_dir / "config.json"
        if not resume:
            self._refuse_existing(resume)
        self._refuse_other_config()  # before "finished": a finished run resumed with other settings says so
        self._refuse_existing(resume)
        self.dist.barrier()  # every rank has checked the run directory before rank 0 writes
        if not saved.exists() and self.dist.is_main:
            write_json(saved, self.config.to_dict())
        self.model = self.optimizer = None  # each candidate builds its own
        self.objectives = []
        results = {}
        forced = self.selection.get("choice") if self.selection else None  # train.select=kfold:K chose already
        needed = [name for name, c in self.candidates.items()
                  if forced is None or name == forced or (name == "concat" and getattr(self.candidates[forced], "text_stage", "own") == "concat")]
        from msakit.training.selection import narrowed

        for index, (name, model_config) in enumerate(self.candidates.items(), 1):
            if name not in needed:
                continue
            sub = self.run_dir / f"fusion_{name}"
            if not (sub / "results.json").exists():
                stale = (sub / "config.json").exists() and not (sub / "last.pt").exists() and not (sub / "text_stage").exists()
                resume_sub = (sub / "config.json").exists() and not stale
                self.dist.barrier()  # every rank has looked before rank 0 removes
                if stale and self.dist.is_main:
                    shutil.rmtree(sub)  # msakit's own: started, but not one epoch finished
                self.dist.barrier()
                if self.config.train.progress:
                    tqdm.write(f"fusion {index}/{len(self.candidates)}: {name} ({sub})")
                config = dataclasses.replace(self.config, model_config=model_config)
                source = self.run_dir / "fusion_concat" if name != "concat" else None  # a text_stage=concat text stage reads it
                Trainer(config, sub, data=self.raw_data, fit_defaults=False, text_encoder_from=source,
                        selection=narrowed(self.selection, f"fusion_{name}")).fit(resume=resume_sub, callback=callback)
            results[name] = read_json(sub / "results.json", f"{name} results")
        chosen = forced or min(results, key=lambda name: results[name]["best_valid_MAE"])  # the first of a tie
        winner = self.run_dir / f"fusion_{chosen}"
        main = self.dist.is_main  # rank 0 writes; the others wait for it at the end
        if main and not (self.run_dir / "best").exists():
            shutil.rmtree(self.run_dir / "best.partial", ignore_errors=True)  # a copy a kill interrupted
            shutil.copytree(winner / "best", self.run_dir / "best.partial")
            (self.run_dir / "best.partial").rename(self.run_dir / "best")
        split = results[chosen]["evaluated_split"]
        for name in (f"{split}_predictions.csv", "metrics.jsonl") if main else ():
            shutil.copyfile(winner / name, self.run_dir / name)
        result = dict(results[chosen])
        result["fusion"] = {"chosen": chosen, "candidates": {
            name: {"run_dir": f"fusion_{name}", "best_valid_MAE": r["best_valid_MAE"], "metrics": r["metrics"],
                   "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"], "train_seconds": r.get("train_seconds"),
                   "total_seconds": (r.get("timings") or {}).get("total_s")} for name, r in results.items()}}
        for name, r in results.items():
            if "text_stage" in r:  # with text_stage=own, its own text-only run: what --compare-text-only reads
                result["text_stage"] = {**r["text_stage"], "run_dir": f"fusion_{name}/{r['text_stage']['run_dir']}"}
        result["train_seconds"] = sum(r["train_seconds"] for r in results.values())
        if self.selection is not None:
            result["selection"] = self.selection
        if main:
            write_json(self.run_dir / "results.json", result)
            for name in results:  # the chosen weights are this run's best/; the others' results stay
                shutil.rmtree(self.run_dir / f"fusion_{name}" / "best", ignore_errors=True)
        self.dist.barrier()
        if self.config.train.progress:
            tqdm.write("fusion: " + ", ".join(f"{n} valid MAE {r['best_valid_MAE']:.4f}" for n, r in results.items()) + f"; kept {chosen}")
        history = [json.loads(line) for line in (self.run_dir / "metrics.jsonl").read_text().splitlines()]
        return RunResult(self.run_dir, result["metrics"], split, result["best_epoch"], result["epochs_run"], history, result.get("ulgm_labels"))

    def _refuse_existing(self, resume: bool) -> None:
        """A staged run (text_first, auto) starts only in an empty run directory, and continues
        only with ``resume`` and while unfinished."""
        if not resume and (self.run_dir / "config.json").exists():
            raise ExistingRunError(
                f"{self.run_dir} already holds a run; pass resume=True (--resume) to continue it, or choose a new run directory"
            )
        if (self.run_dir / "results.json").exists():
            raise ExistingRunError(f"{self.run_dir}: this run is finished (results.json); nothing to resume")

    def _refuse_other_config(self) -> None:
        """The run already started here was started with this config (if one was saved)."""
        if (self.run_dir / "config.json").exists():
            differences = _saved_config_differences(self.run_dir / "config.json", self.config)
            if differences:
                raise ConfigError(f"{self.run_dir}: the run was started with another config (differs in {', '.join(differences[:5])})")

    def _max_epochs(self) -> int:
        """This run's epoch limit: the kfold-chosen count, ``train.max_epochs``, or the model's own for its second stage."""
        fixed = self._fixed_epochs()
        if fixed is not None:
            return fixed
        return (self.model.needs_text_stage() and self.model.second_stage_epochs()) or self.config.train.max_epochs

    def _fixed_epochs(self) -> int | None:
        return None if self.selection is None else self.selection["epochs"].get("")

    def _cross_validate(self, resume: bool) -> None:
        """``train.select=kfold:K``: the run as configured on each fold (msakit/training/selection.py),
        then the epochs (and candidate) it will train on the whole training split."""
        from msakit.data.folds import video_folds
        from msakit.training import selection

        t = self.config.train
        folds_dir = self.run_dir / selection.FOLDS_DIR
        if not resume and (folds_dir.exists() or (self.run_dir / "config.json").exists()):
            raise ExistingRunError(f"{self.run_dir} already holds a run; pass resume=True (--resume) to continue it, or choose a new run directory")
        count = parse_select(t.select)
        rows, grouped_by = video_folds(self.raw_data["train"].ids, count, t.seed, f"{self.raw_data.source}'s training split")
        config = dataclasses.replace(self.config, train=dataclasses.replace(t, select="valid"))
        dirs = []
        for k, valid_rows in enumerate(rows, 1):
            sub = folds_dir / f"fold_{k}"
            dirs.append(sub)
            if (sub / "results.json").exists():
                continue
            resume_sub = has_progress(sub)
            self.dist.barrier()  # every rank has looked before rank 0 removes
            if not resume_sub and sub.exists() and self.dist.is_main:
                import shutil

                shutil.rmtree(sub)  # msakit's own: started, but not one epoch finished
            self.dist.barrier()
            if t.progress:
                tqdm.write(f"select: fold {k}/{count} ({len(valid_rows)} of {len(self.raw_data['train'])} training samples held out, "
                           f"whole {grouped_by}) in {sub}")
            Trainer(config, sub, data=selection.fold_data(self.raw_data, valid_rows, k, count), fit_defaults=False).fit(resume=resume_sub)
            if self.dist.is_main:  # its curves and results are what selection reads; its weights have no use
                import shutil

                shutil.rmtree(sub / "best", ignore_errors=True)
        self.selection = selection.choose(dirs, t.select, grouped_by, [len(r) for r in rows])
        if self.dist.is_main:
            write_json(folds_dir / "selection.json", self.selection)
        if t.progress:
            chosen = ", ".join(f"{stage or 'the run'}: {epochs} epoch(s)" for stage, epochs in self.selection["epochs"].items())
            tqdm.write(f"select: {chosen}" + (f"; kept {self.selection['choice']}" if self.selection["choice"] else "")
                       + " (lowest mean validation MAE over the folds); now on the whole training split")

    def _save_best(self) -> None:
        if not self.dist.is_main:
            return
        train = self.data["train"]
        widths = {m: int(getattr(train, key).shape[1]) for m, key in (("a", "audio"), ("v", "vision"))
                  if m in self.modalities and getattr(train, key) is not None}
        # How the model reads its input, so best/ alone reads it as trained (msakit.training.runs._run_data_config).
        reading = {k: getattr(self.config.data, k) for k in ("max_text_tokens", "context", "context_side", "context_modalities", "context_encoder")}
        save_best_model(self.run_dir / "best", self.model, self.config.data.kind, self.tokenizer, absent_frames=widths, data_settings=reading)
        # Features from `msakit extract`: keep their extractor description with the model.
        from msakit.extract.sidecar import copy_sidecar_into

        copy_sidecar_into(self.config.data.path, self.run_dir / "best")
        if self.standardizer is not None:
            from msakit.data.standardize import FILE_NAME

            self.standardizer.save(self.run_dir / "best" / FILE_NAME)

    def text_stage_config(self) -> RunConfig:
        """This run's configuration on text alone: what ``--text-only`` trains (audio/vision
        withheld, their modality dropout and alignment pairs dropped)."""
        import dataclasses

        from msakit.data.corruption import format_modality_dropout, parse_modality_dropout

        c = self.config
        dropout = {m: p for m, p in parse_modality_dropout(c.train.modality_dropout).items() if m == "t"}
        return dataclasses.replace(
            c,
            data=stage_data(c.data, ("t",)),
            train=dataclasses.replace(c.train, modality_dropout=format_modality_dropout(dropout)),
            alignment=dataclasses.replace(c.alignment, pairs="none"),
        )

    def _adopt_frozen_text_encoder(self, source: Path) -> None:
        """The text encoder of the run in ``source`` (its best model), frozen: each transcript
        is encoded once and read from memory after, so only the heads train."""
        if not hasattr(getattr(self.model, "text_model", None), "freeze"):
            raise ConfigError(f"{self.config.model}: its text encoder cannot be taken from another run (no text encoder here)")
        trained, _, _ = load_model(source, self.device)
        self.model.text_model.load_state_dict(trained.text_model.state_dict())
        self.model.text_model.freeze()

    def _text_stage(self) -> dict:
        """Train (or finish, or read) the text stage in ``RUN/text_stage``; its best model and results."""
        import shutil

        stage_dir = self.run_dir / "text_stage"
        if not (stage_dir / "results.json").exists():
            resume = (stage_dir / "last.pt").exists()  # killed during the text stage: it continues
            stale = not resume and stage_dir.exists()
            self.dist.barrier()  # every rank has looked before rank 0 removes
            if stale and self.dist.is_main:
                shutil.rmtree(stage_dir)  # msakit's own: started, but not one epoch finished
            self.dist.barrier()
            if self.config.train.progress:
                tqdm.write(f"text stage: {self.config.model} on text alone first ({stage_dir}), then audio and vision as a correction")
            shared = getattr(self.config.model_config, "text_stage", "own") == "concat"
            if shared and self.text_encoder_from is None:
                raise ConfigError("model.text_stage=concat reads the concat candidate of a model.fusion=auto run; "
                                  "use model.fusion=auto, or model.text_stage=own with fusion=text_first")
            from msakit.training.selection import narrowed

            Trainer(self.text_stage_config(), stage_dir, data=self.data, fit_defaults=False,
                    frozen_text_from=self.text_encoder_from if shared else None, selection=narrowed(self.selection, "text_stage")).fit(resume=resume)
        differences = _saved_config_differences(stage_dir / "config.json", self.text_stage_config())
        if differences:
            raise ConfigError(
                f"{stage_dir}: the text stage was trained with another config (differs in {', '.join(differences[:5])}); "
                "delete it, or resume with the settings it was started with"
            )
        if not (stage_dir / "best").exists():
            raise RunDirError(f"{stage_dir}: the text stage finished but its model (best/) is gone; delete {stage_dir} to train it again")
        model, _, _ = load_model(stage_dir, self.device)
        return {"model": model, "results": read_json(stage_dir / "results.json", "text stage results")}

    # ---- pretraining stages (MSAModel.pretraining_stages) ----------------------------------
    def _pretraining_stages(self, resume: bool) -> tuple[bool, bool]:
        """Train (or finish, or read) each stage in ``RUN/stage_<name>`` and hand its best model
        to ``adopt_pretrained``; then ``(resume, restart)`` for this run's own epochs, as after
        a text stage: killed before its first epoch, this run starts again."""
        self._refuse_existing(resume)
        self.stages = {}
        for stage in self.model.pretraining_stages():
            self.stages[stage.name] = self._pretraining_stage(stage)
            self.model.adopt_pretrained(stage.name, self.stages[stage.name]["model"])
        seed_everything(self.config.train.seed)  # this run's epochs start from the seed, as a run of their own
        restart = resume and not (self.run_dir / "last.pt").exists()
        if restart:
            self._refuse_other_config()
        return resume and not restart, restart

    def stage_config(self, stage) -> RunConfig:
        """This run's configuration changed as ``stage`` says, on its modalities only."""
        import dataclasses

        from msakit.data.corruption import format_modality_dropout, parse_modality_dropout

        c = self.config
        dropout = {m: p for m, p in parse_modality_dropout(c.train.modality_dropout).items() if m in stage.modalities}
        return dataclasses.replace(
            c,
            data=stage_data(c.data, tuple(stage.modalities)),
            model_config=dataclasses.replace(c.model_config, **stage.model),
            train=dataclasses.replace(c.train, **{**stage.train, "modality_dropout": format_modality_dropout(dropout)}),
            alignment=dataclasses.replace(c.alignment, pairs="none"),
        )

    def _pretraining_stage(self, stage) -> dict:
        import dataclasses
        import shutil

        splits = self.raw_data.splits
        label = stage.label if all(stage.label in split.labels for split in splits.values()) else "m"
        data = self.raw_data if label == "m" else dataclasses.replace(
            self.raw_data, splits={n: dataclasses.replace(s, labels={**s.labels, "m": s.labels[label]}) for n, s in splits.items()})
        stage_dir, config = self.run_dir / f"stage_{stage.name}", self.stage_config(stage)
        if not (stage_dir / "results.json").exists():
            resume = (stage_dir / "last.pt").exists()  # killed during the stage: it continues
            if not resume and stage_dir.exists():
                shutil.rmtree(stage_dir)  # msakit's own: started, but not one epoch finished
            if self.config.train.progress:
                tqdm.write(f"stage {stage.name}: {self.config.model} on {','.join(stage.modalities)}, learning label {label!r} ({stage_dir})")
            from msakit.training.selection import narrowed

            Trainer(config, stage_dir, data=data, fit_defaults=False, selection=narrowed(self.selection, stage_dir.name)).fit(resume=resume)
        differences = _saved_config_differences(stage_dir / "config.json", config)
        if differences:
            raise ConfigError(f"{stage_dir}: stage {stage.name} was trained with another config (differs in {', '.join(differences[:5])}); "
                              "delete it, or resume with the settings it was started with")
        if not (stage_dir / "best").exists():
            raise RunDirError(f"{stage_dir}: stage {stage.name} finished but its model (best/) is gone; delete {stage_dir} to train it again")
        model, _, _ = load_model(stage_dir, self.device)
        return {"model": model, "label": label, "results": read_json(stage_dir / "results.json", f"stage {stage.name} results")}

    def _stage_results(self) -> dict:
        """Each pretraining stage's results, for this run's ``results.json``."""
        return {
            name: {"run_dir": f"stage_{name}", "label": s["label"], "metrics": s["results"]["metrics"], "best_epoch": s["results"]["best_epoch"],
                   "best_valid_MAE": s["results"]["best_valid_MAE"], "epochs_run": s["results"]["epochs_run"]}
            for name, s in self.stages.items()
        }

    def _finish(self, state: dict) -> RunResult:
        if not self.dist.is_main:  # rank 0 tests and writes; the others read what it wrote
            self.dist.barrier()
            results = read_json(self.run_dir / "results.json", "run results")
            return RunResult(self.run_dir, results["metrics"], results["evaluated_split"], state["best_epoch"], state["epoch"],
                             state["history"], results.get("ulgm_labels"))
        started = time.perf_counter()
        best, _, _ = load_model(self.run_dir, self.device)
        split = "test" if "test" in self.data.splits else "valid"
        features: dict[str, np.ndarray] = {}
        predictions = self.predict(split, best, features)
        test_seconds = time.perf_counter() - started
        metrics = regression_metrics(predictions["m"], self.data[split].labels["m"], self.config.data.kind)
        from msakit.data.context import video_of
        from msakit.metrics import bootstrap_standard_errors

        videos = [(video_of(i) or (i,))[0] for i in self.data[split].ids]  # a sample naming no video is a unit of its own
        uncertainty = bootstrap_standard_errors(predictions["m"], self.data[split].labels["m"], self.config.data.kind, groups=videos,
                                                seed=self.config.train.seed)
        write_predictions_csv(self.run_dir / f"{split}_predictions.csv", self.data[split].ids, self.data[split].labels["m"], predictions)
        # The split the run was selected on: its metrics with the best weights, and how little a
        # small validation split (MOSI's: 229 utterances of 10 speakers) can tell two epochs apart.
        valid_predictions = predictions if split == "valid" else self.predict("valid", best)
        valid_labels = self.data["valid"].labels["m"]
        valid_metrics = regression_metrics(valid_predictions["m"], valid_labels, self.config.data.kind)
        valid_uncertainty = bootstrap_standard_errors(valid_predictions["m"], valid_labels, self.config.data.kind,
                                                      groups=[(video_of(i) or (i,))[0] for i in self.data["valid"].ids], seed=self.config.train.seed)
        results = {
            "model": self.config.model,
            "data": self.data.source,
            "kind": self.config.data.kind,
            "modalities": list(self.modalities),
            "standardized": sorted(self.standardizer.stats) if self.standardizer is not None else [],
            "seed": self.config.train.seed,
            "evaluated_split": split,
            "metrics": metrics,
            # How far each metric would move with another draw of the split's videos (or samples).
            "metrics_standard_error": uncertainty,
            # L_cov between every two same-size features over the whole split: how close the
            # modalities' second-order statistics are, with or without alignment in training.
            "covariance_distance": covariance_distances({k: torch.from_numpy(v) for k, v in features.items()}),
            "best_epoch": state["best_epoch"],
            "best_valid_MAE": state["best_mae"],
            "valid_metrics": valid_metrics,
            "valid_metrics_standard_error": valid_uncertainty,
            "epochs_run": state["epoch"],
            "train_seconds": sum(r["train_seconds"] for r in state["history"]),
            "precision": "fp32" if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch."),
            "timings": {
                **{k: round(v, 4) for k, v in self.timings.items()},
                "train_s": round(sum(r["train_seconds"] for r in state["history"]), 4),
                "validate_s": round(sum(r.get("valid_seconds", 0.0) for r in state["history"]), 4),
                "test_s": round(test_seconds, 4),  # reload the best weights, predict the evaluated split
                "total_s": round(time.perf_counter() - self._created, 4),  # this process (a resumed run: since resuming)
            },
        }
        if getattr(self, "text_stage", None) is not None:
            stage = self.text_stage["results"]
            results["text_stage"] = {"run_dir": "text_stage", "metrics": stage["metrics"], "best_epoch": stage["best_epoch"],
                                     "best_valid_MAE": stage["best_valid_MAE"], "epochs_run": stage["epochs_run"],
                                     # own: the model's text-only run; concat: heads on auto's concat encoder (not a text-only run)
                                     "text_encoder": getattr(self.config.model_config, "text_stage", "own")}
        if getattr(self, "stages", None):
            results["stages"] = self._stage_results()
        if self.selection is not None:  # train.select=kfold:K: what chose this run's epochs
            results["selection"] = self.selection
        ulgm_labels = self.ulgm_label_comparison(state["epoch"])
        if ulgm_labels is not None:
            results["ulgm_labels"] = ulgm_labels
        write_json(self.run_dir / "results.json", results)
        if getattr(self, "text_stage", None) is not None:
            # its weights are inside this run's model (the frozen text prediction): no second copy,
            # removed only now, so a kill before results.json leaves a run that can still resume
            import shutil

            shutil.rmtree(self.run_dir / "text_stage" / "best", ignore_errors=True)
        for name in getattr(self, "stages", None) or {}:  # their weights are in this run's model: the stages' own copies go
            import shutil

            shutil.rmtree(self.run_dir / f"stage_{name}" / "best", ignore_errors=True)
        # The resume state (weights + Adam moments, ~3x the model) has no use once the run is
        # finished; best/ holds the model. Dropping it keeps multi-seed sweeps from filling disks.
        (self.run_dir / "last.pt").unlink(missing_ok=True)
        self.dist.barrier()
        return RunResult(self.run_dir, metrics, split, state["best_epoch"], state["epoch"], state["history"], ulgm_labels)

    def ulgm_label_comparison(self, epoch: int) -> dict | None:
        """ULGM's generated unimodal labels (after ``epoch``) against the annotated unimodal labels
        of the training split (SIMS's, the synthetic data's planted ones), per modality; None
        when the model has no ULGM or the data no annotated unimodal label."""
        from msakit.objectives.ulgm import ULGM

        ulgm = next((o for o in self.objectives if isinstance(o, ULGM)), None)
        if ulgm is None:
            return None
        modalities = ulgm.compare_with_annotated(self.data["train"].labels, self.config.data.kind)
        if not modalities:
            return None
        return {"split": "train", "after_epoch": epoch, "modalities": modalities}

    # ---- resume ---------------------------------------------------------------------------
    def _save_resume_state(self, state: dict) -> None:
        payload = {
            "state": state,
            "model": self.model.state_dict(),
            "objectives": [o.state_dict() for o in self.objectives],
            "optimizer": self.optimizer.state_dict(),
            "rng": _rng_state(),
        }
        if self.scaler is not None:
            payload["scaler"] = self.scaler.state_dict()
        if self.dist.active:  # every rank's random numbers (dropout), and how many ranks there were
            payload["rng_ranks"] = self.dist.gather_objects(payload["rng"])
            payload["world_size"] = self.dist.world
        if self.dist.is_main:
            atomic_write(self.run_dir / "last.pt", lambda p: torch.save(payload, p))

    def _load_resume_state(self) -> dict:
        path = self.run_dir / "last.pt"
        if not (self.run_dir / "config.json").exists():
            raise MissingFileError(f"{self.run_dir}: no run to resume here (no config.json)")
        saved_config = read_json(self.run_dir / "config.json", "run config")
        try:
            differences = config_differences(config_from_dict(saved_config).to_dict(), self.config.to_dict())
        except (MsakitError, KeyError, TypeError) as error:
            raise RunDirError(f"{self.run_dir / 'config.json'}: damaged run config ({error}); start a new run directory") from None
        if differences:
            raise ConfigError(
                f"{self.run_dir}: the run was started with another config (differs in {', '.join(differences[:5])}); resume with "
                f"the same settings (they are in {self.run_dir / 'config.json'}) or start a new run directory"
            )
        if (self.run_dir / "results.json").exists():
            raise ExistingRunError(f"{self.run_dir}: this run is finished (results.json); nothing to resume")
        if not path.exists():
            raise MissingFileError(f"{path}: nothing to resume (no epoch has finished in {self.run_dir})")
        try:
            payload = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as error:  # noqa: BLE001 - any failure means a damaged or hostile file
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise RunDirError(
                f"{path}: not a resume checkpoint msakit can read safely ({first}); delete it to restart "
                f"{self.run_dir} from scratch, or start a new run directory"
            ) from None
        try:
            check_state_matches(self.model, payload["model"], str(path))
            self.model.load_state_dict(payload["model"])
            if len(payload["objectives"]) != len(self.objectives):
                raise ValueError(f"{len(payload['objectives'])} objective states for {len(self.objectives)} objectives")
            for objective, objective_state in zip(self.objectives, payload["objectives"]):
                objective.load_state_dict(objective_state)
            self.optimizer.load_state_dict(payload["optimizer"])
            started_with = payload.get("world_size", 1)
            if started_with != self.dist.world:
                raise ConfigError(f"{path}: the run was started with {started_with} process(es) and is resumed with {self.dist.world}; "
                                  f"resume it with {started_with} (msakit train --nproc {started_with} ... --resume)")
            _set_rng_state(payload["rng_ranks"][self.dist.rank] if self.dist.active else payload["rng"])
            if self.scaler is not None and "scaler" in payload:
                self.scaler.load_state_dict(payload["scaler"])
            state = payload["state"]
            if not isinstance(state, dict) or not {"epoch", "best_mae", "best_epoch", "stale", "history"} <= set(state):
                raise ValueError("no training state")
            check_resume_state(state, self._max_epochs(), self.config.train.early_stop)
        except (RunDirError, ConfigError):
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise RunDirError(
                f"{path}: damaged resume checkpoint ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}); "
                f"delete it to restart {self.run_dir} from scratch, or start a new run directory"
            ) from None
        if self.config.train.progress:
            tqdm.write(f"resuming {self.run_dir} after epoch {state['epoch']} (best epoch {state['best_epoch']})")
        return state


def _saved_config_differences(path: Path, config: RunConfig) -> list[str]:
    """What changes results between the config saved at ``path`` and ``config``."""
    return config_differences(config_from_dict(read_json(path, "run config")).to_dict(), config.to_dict())


def check_resume_state(state: dict, max_epochs: int, early_stop: int) -> None:
    """The counters of a resume checkpoint are what a run of this config could have written:
    a tampered or damaged ``last.pt`` (``epoch=99``, ``best_mae=NaN``) is refused, not trusted."""
    def whole(name: str, low: int, high: int) -> int:
        value = state[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}={value!r} is not a whole number in [{low}, {high}]")
        return value

    epoch = whole("epoch", 1, max_epochs)
    best_epoch = whole("best_epoch", 0, epoch)  # 0: no epoch has had a finite validation MAE yet
    whole("stale", epoch - best_epoch, min(early_stop, epoch - best_epoch))
    best = state["best_mae"]
    # best_epoch 0 with a score: the text stage's prediction (model.fusion=text_first) is the best so far
    scored = best_epoch > 0 or state.get("text_stage") is True
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best) or best < 0 or scored != math.isfinite(best):
        raise ValueError(f"best_mae={best!r} is not a finite score >= 0 (best_epoch={best_epoch})")
    if not isinstance(state["history"], list) or len(state["history"]) != epoch:
        raise ValueError(f"history holds {len(state['history']) if isinstance(state['history'], list) else '?'} epochs, epoch={epoch}")


def stage_data(data, modalities: tuple[str, ...]):
    """The ``data`` section of a run's stage on ``modalities`` alone (a text stage, a unimodal
    pretraining stage): ``data.context`` off where it names none of them (context on audio only
    leaves a text stage nothing to read with its neighbours), else unchanged."""
    import dataclasses

    from msakit.data.context import reads_any

    if data.context and not reads_any(data.context_modalities, modalities):
        return dataclasses.replace(data, modalities=modalities, context=0)
    return dataclasses.replace(data, modalities=modalities)


def check_context(config, data, modalities) -> "ContextSpec":
    """``data.context``/``data.context_side`` as a ``ContextSpec``, checked against the data before
    any training: text must be used, the features must not be word-aligned, every sample must
    name its video. Videos with utterances in several splits are named in a warning (each is
    read with its own split's neighbours only)."""
    import sys

    from msakit.data.context import ContextSpec, check_ids, videos_across_splits

    spec = ContextSpec(config.data.context, config.data.context_side, config.data.context_modalities, config.data.context_encoder)
    if not spec.on:
        return spec
    if not set(spec.modalities) & set(modalities):
        raise ConfigError(f"data.context={spec.k} with data.context_modalities={','.join(spec.modalities)}: this run uses none of them "
                          f"(modalities {','.join(modalities)}); name modalities the run uses (e.g. data.context_modalities={','.join(modalities)}), "
                          "or data.context=0")
    if spec.reads("t") and "t" in modalities and data.aligned:
        raise ConfigError(f"{data.source}: data.context with word-aligned features: the neighbours' words have no frames; "
                          "use the unaligned file (e.g. unaligned_50.pkl) or data.context=0")
    for name, split in data.splits.items():
        check_ids(split.ids, f"{data.source} ({name} split)")
    crossing = videos_across_splits(data.splits)
    if crossing:
        shown = ", ".join(f"{v} ({'+'.join(s)})" for v, s in list(crossing.items())[:5]) + (", ..." if len(crossing) > 5 else "")
        print(f"warning: {data.source}: {len(crossing)} video(s) have utterances in more than one split: {shown}. Each is read with "
              "the neighbours of its own split only; a speaker in both training and test data flatters the test score",
              file=sys.stderr)
    return spec


@torch.no_grad()
def predict_builder(model, builder: BatchBuilder, batch_size: int, device, features: dict | None = None) -> dict[str, np.ndarray]:
    """Predictions per key over a whole split; if ``features`` is a dict, it is filled with
    the model's features per key as well."""
    model.eval()
    collected: dict[str, list[np.ndarray]] = {}
    collected_features: dict[str, list[np.ndarray]] = {}
    for batch in builder.batches(batch_size):
        output = model(batch.to(device))
        for k, v in output.predictions.items():
            collected.setdefault(k, []).append(v.float().cpu().numpy())
        if features is not None:
            for k, v in output.features.items():
                collected_features.setdefault(k, []).append(v.float().cpu().numpy())
    if features is not None:
        features.update({k: np.concatenate(v) for k, v in collected_features.items()})
    return {k: np.concatenate(v) for k, v in collected.items()}


def write_predictions_csv(path: Path, ids, labels, predictions: dict[str, np.ndarray]) -> None:
    keys = ["m"] + [k for k in ("t", "a", "v") if k in predictions]

    def write(p: Path) -> None:
        with open(p, "w", newline="") as f:
            writer = csv.writer(f)
            header = ["id"] + (["label"] if labels is not None else []) + ["prediction"] + [f"prediction_{k}" for k in keys[1:]]
            writer.writerow(header)
            for i, sample_id in enumerate(ids):
                row = [sample_id] + ([f"{float(labels[i]):.6g}"] if labels is not None else [])
                row += [f"{float(predictions[k][i]):.6g}" for k in keys]
                writer.writerow(row)

    atomic_write(path, write)
