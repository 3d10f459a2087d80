"""Runs: train a model once per seed, reload it, evaluate it, predict with it.

The library behind ``msakit.train``/``evaluate``/``predict``/``load_run``; workflows
(compare, ablation, sweep, robustness, serve) call these, never each other's copies.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msakit.config import fit_defaults_to_data, resolve_config  # noqa: F401  (fit_defaults_to_data re-exported)
from msakit.errors import ConfigError, MissingFileError, RunDirError
from msakit.metrics import format_table, regression_metrics, summarize_seeds


@dataclass
class TrainSummary:
    run_dir: Path
    per_seed: dict[int, dict[str, float]]
    summary: dict[str, dict[str, float]]  # metric -> {"mean", "std", "n"}
    evaluated_split: str
    # ULGM's generated unimodal labels vs the annotated ones, per seed (models with ULGM on data
    # with annotated unimodal labels: SIMS, the synthetic data); empty otherwise.
    ulgm_labels: dict[int, dict] = field(default_factory=dict)
    # Per seed: bootstrap standard errors of the evaluated split's metrics (msakit.metrics.bootstrap_standard_errors).
    standard_errors: dict[int, dict] = field(default_factory=dict)
    # Per seed: the same for the validation split the run was selected on (runs of before: none).
    valid_standard_errors: dict[int, dict] = field(default_factory=dict)

    def table(self) -> str:
        table = format_table(self.summary, title=f"{self.evaluated_split} metrics over {len(self.per_seed)} seed(s)")
        line = standard_error_line(self.standard_errors, self.evaluated_split)
        if line:
            table += "\n" + line
        line = standard_error_line(self.valid_standard_errors, "valid") if self.evaluated_split != "valid" else ""
        if line:  # what selection (early stopping, the fusion choice) could tell apart
            table += "\n" + line.replace("the valid split", "the valid split the run was selected on", 1)
        if self.ulgm_labels:
            table += "\n\n" + ulgm_label_table(self.ulgm_labels)
        return table


def standard_error_line(per_seed: dict, split: str) -> str:
    """One line: how far the main metrics would move with another draw of the split (the
    bootstrap standard error, averaged over seeds), and over how many videos or samples."""
    import numpy as np

    found = [e for e in per_seed.values() if isinstance(e, dict) and e.get("standard_errors")]
    if not found:
        return ""
    shown = []
    for name in ("Acc-2 (non-0)", "Acc-2", "MAE", "Corr"):
        values = [e["standard_errors"][name] for e in found if name in e["standard_errors"]]
        if values and not (name == "Acc-2" and any("Acc-2 (non-0)" in e["standard_errors"] for e in found)):
            mean = float(np.mean(values))
            shown.append(f"{name} ±{100 * mean:.2f}" if name.startswith("Acc") else f"{name} ±{mean:.4f}")
    units = found[0].get("units")
    return (f"Standard error within the {split} split (bootstrap over its {units} {found[0].get('resampled', 'samples')}): "
            + ", ".join(shown) + "; differences smaller than about twice these are within chance.")


_MODALITY_NAMES = {"t": "text", "a": "audio", "v": "vision"}


def summarize_ulgm_labels(per_seed: dict) -> dict[str, dict]:
    """Mean and std over seeds of each score of ``Trainer.ulgm_label_comparison`` results:
    ``{s: {"generated": {metric: {"mean", "std", "n"}}, "multimodal_label": {...}, "n": N}}``."""
    out: dict[str, dict] = {}
    comparisons = [c["modalities"] for c in per_seed.values() if c]
    for s in (s for s in "tav" if comparisons and all(s in c for c in comparisons)):
        out[s] = {which: summarize_seeds([c[s][which] for c in comparisons]) for which in ("generated", "multimodal_label")}
        out[s]["n"] = comparisons[0][s]["n"]
    return out


def ulgm_label_table(per_seed: dict) -> str:
    """The printed comparison (markdown, as ``format_table``): per modality, the generated
    labels' MAE, correlation and sign agreement with the annotated labels (mean over seeds),
    beside those of y_m, the multimodal label they start from."""
    summary = summarize_ulgm_labels(per_seed)
    epochs = sorted({c["after_epoch"] for c in per_seed.values() if c})
    lines = [f"ULGM's generated unimodal labels vs the annotated ones (training split, after epoch {', '.join(map(str, epochs))}; "
             f"mean over {len(per_seed)} seed(s))",
             "| Modality | n | MAE | Corr | Sign agreement | y_m MAE | y_m Corr | y_m sign agreement |",
             "|---|---|---|---|---|---|---|---|"]
    for s, row in summary.items():
        g, m = row["generated"], row["multimodal_label"]
        lines.append(f"| {_MODALITY_NAMES[s]} | {row['n']} | {g['MAE']['mean']:.4f} | {g['Corr']['mean']:.4f} | {g['sign_agreement']['mean']:.2%} | "
                     f"{m['MAE']['mean']:.4f} | {m['Corr']['mean']:.4f} | {m['sign_agreement']['mean']:.2%} |")
    return "\n".join(lines)


def train(
    model: str = "dma",
    data: str | Path = "synthetic",
    *,
    kind: str = "mosi",
    seeds: tuple[int, ...] | list[int] = (1111,),
    run_dir: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    resume: bool = False,
    reuse: bool = False,
) -> TrainSummary:
    """Train ``model`` on ``data`` once per seed; return per-seed and mean ± std test metrics.

    ``data`` is an MMSA feature pickle, a directory of ``text,label`` tables, or
    ``"synthetic"``. ``overrides`` is ``{"model"|"data"|"train": {key: value}}``. Each seed
    runs in ``run_dir/seed_<seed>``; ``resume=True`` continues unfinished seeds from their
    last completed epoch and leaves finished ones as they are. ``reuse=True`` does the same
    when ``run_dir`` exists and starts afresh when it does not: how compare, ablate and the
    text-only comparison reuse finished runs. Either way every seed already there is checked,
    before anything trains, to have been made with these settings.
    """
    from msakit.data import load_dataset
    from msakit.training import distributed
    from msakit.training.checkpoint import has_progress, read_json, write_json
    from msakit.training.trainer import Trainer, resolve_device

    seeds = check_seeds(seeds)
    base = resolve_config(model, kind=kind, data_path=str(data), overrides=overrides)
    for seed in seeds:  # every seed's config is valid before anything is written
        dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed)).validate()
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(model, data)
    check_run_dir(run_dir, resume)
    started = time.perf_counter()
    dataset = load_dataset(base.data.path, base.data.kind, base.data.modalities)
    load_seconds = time.perf_counter() - started
    base = fit_defaults_to_data(base, dataset.modalities, overrides)
    resume = resume or (reuse and run_dir.is_dir())
    configs = {seed: dataclasses.replace(base, train=dataclasses.replace(base.train, seed=int(seed))) for seed in seeds}
    # torchrun: every process runs this; rank 0 writes (one process: nothing changes)
    dist = distributed.context(resolve_device(base.train.device).type) if distributed.world_size() > 1 else distributed.DistContext()
    if resume:  # a run made with other settings is never passed off as this one, nor continued
        for seed, config in configs.items():
            if (run_dir / f"seed_{seed}" / "config.json").exists():
                check_same_config(run_dir / f"seed_{seed}", config)
    per_seed, split, ulgm_labels, standard_errors, valid_errors = {}, "test", {}, {}, {}
    said = False
    for seed in seeds:
        config = configs[seed]
        seed_dir = run_dir / f"seed_{seed}"
        if resume and (seed_dir / "results.json").exists():
            done = read_json(seed_dir / "results.json", "results file")
            per_seed[seed], split = done["metrics"], done["evaluated_split"]
            standard_errors[seed] = done.get("metrics_standard_error")
            valid_errors[seed] = done.get("valid_metrics_standard_error")
            if done.get("ulgm_labels"):
                ulgm_labels[seed] = done["ulgm_labels"]
            continue
        can_resume = resume and has_progress(seed_dir)  # also a finished text stage or fusion candidate inside it
        stale = resume and not can_resume and (seed_dir / "config.json").exists()
        dist.barrier()  # every rank has looked before rank 0 removes
        if stale and dist.is_main:
            # Killed before its first epoch finished: nothing in it is worth keeping.
            shutil.rmtree(seed_dir)
        dist.barrier()
        trainer = Trainer(config, seed_dir, data=dataset, fit_defaults=False)  # fitted above, with the overrides
        trainer.timings["load_s"] = load_seconds  # one load, shared by every seed of this call
        if not said:  # once, when the data has passed every check and the first seed starts
            _say_split_sizes(data, dataset)
            said = True
        result = trainer.fit(resume=can_resume)
        per_seed[seed], split = result.metrics, result.evaluated_split
        done = read_json(seed_dir / "results.json", "run results")
        standard_errors[seed], valid_errors[seed] = done.get("metrics_standard_error"), done.get("valid_metrics_standard_error")
        if result.ulgm_labels:
            ulgm_labels[seed] = result.ulgm_labels
    summary = summarize_seeds(list(per_seed.values()))
    payload = {"model": model, "data": str(data), "kind": kind, "evaluated_split": split, "per_seed": per_seed, "summary": summary}
    standard_errors = {s: e for s, e in standard_errors.items() if isinstance(e, dict)}
    if standard_errors:
        payload["standard_error_per_seed"] = standard_errors
    valid_errors = {s: e for s, e in valid_errors.items() if isinstance(e, dict)}
    if valid_errors:
        payload["valid_standard_error_per_seed"] = valid_errors
    if ulgm_labels:
        payload["ulgm_labels"] = {"per_seed": ulgm_labels, "summary": summarize_ulgm_labels(ulgm_labels)}
    if dist.is_main:
        write_json(run_dir / "summary.json", payload)
    return TrainSummary(run_dir, per_seed, summary, split, ulgm_labels, standard_errors, valid_errors)


def _say_split_sizes(data, dataset) -> None:
    """One line on stderr with the samples of each split, and a warning when a validation or test
    split is too small for its metrics to mean anything (``msakit.metrics.MIN_MEASURABLE_SPLIT``)."""
    import sys

    from msakit.metrics import split_sizes

    sizes, warnings = split_sizes({name: len(split) for name, split in dataset.splits.items()})
    print(f"note: splits of {data}: {sizes} sample(s); modalities {'+'.join(dataset.modalities)}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def default_run_dir(model: str, data: str | Path) -> Path:
    """``runs/<model>_<data stem>_<time>``: where ``train`` writes when no run_dir is given."""
    stem = "synthetic" if str(data) == "synthetic" else Path(data).stem
    base = Path("runs") / f"{model}_{stem}_{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # two runs started within the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def check_seeds(seeds) -> list[int]:
    """Seeds as a list of distinct integers in [0, 2**63), or a ConfigError naming the bad one."""
    if isinstance(seeds, (int, str)):
        seeds = [seeds]
    seeds = list(seeds or [])
    if not seeds:
        raise ConfigError("seeds: give at least one seed (e.g. --seeds 1111,1112,1113)")
    checked = []
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, str)) or not str(seed).lstrip("-").isdigit():
            raise ConfigError(f"seeds: {seed!r} is not an integer; give whole numbers such as 1111,1112")
        value = int(seed)
        if not 0 <= value < 2**63:
            raise ConfigError(f"seeds: {value} is out of range; seeds are integers from 0 to 2**63 - 1")
        if value in checked:
            raise ConfigError(f"seeds: {value} is given twice; each seed is one run")
        checked.append(value)
    return checked


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse a run directory that cannot hold a run, before any work starts."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run-dir {run_dir}: is a file, not a directory; choose a directory path")
    if resume:
        if not run_dir.is_dir():
            raise MissingFileError(f"--run-dir {run_dir}: does not exist, so there is nothing to resume; drop --resume to start a new run")
        return
    from msakit.outputs import check_writable_location

    check_writable_location("--run-dir", run_dir, run_dir, RunDirError)


def check_same_config(seed_dir: Path, config) -> None:
    """A run already in ``seed_dir`` is reused or continued only if it was made with the same
    settings (``config_differences``: what changes results), else a ``RunDirError``."""
    from msakit.config import config_from_dict, describe_differences
    from msakit.training.checkpoint import read_json

    try:
        saved = config_from_dict(read_json(seed_dir / "config.json", "run config")).to_dict()
    except (KeyError, TypeError) as error:
        raise RunDirError(f"{seed_dir / 'config.json'}: unreadable run config ({error}); remove {seed_dir} or choose another run directory") from None
    differences = describe_differences(saved, config.to_dict())
    if differences:
        # e.g. a run started before a default changed: --set the value it was trained with
        raise RunDirError(
            f"{seed_dir} was trained with another config (differs in {differences}); "
            f"repeat its settings with --set (all in {seed_dir / 'config.json'}) or choose another run directory"
        )


def seed_dirs(run_dir: Path) -> list[Path]:
    if (run_dir / "best").is_dir():
        return [run_dir]
    dirs = sorted(p for p in run_dir.glob("seed_*") if (p / "best").is_dir())
    if not dirs:
        raise MissingFileError(f"{run_dir}: no trained model found (expected best/ or seed_*/best/)")
    return dirs


def run_root(path: str | Path) -> Path:
    """The whole run a path given as a run belongs to: from a ``seed_<n>`` (or ``fusion_<name>``,
    or ``best``) folder up to the folder above them, so that no output lands beside its seeds."""
    path = Path(path).resolve()
    while path.parent != path and (path.name == "best" or path.name.startswith(("seed_", "fusion_"))):
        path = path.parent
    return path


def load_run(run_dir: str | Path, device: str = "cpu"):
    """Load the trained model of a run: ``(model, tokenizer, meta)``. A multi-seed run
    directory loads its first seed; pass a ``seed_<n>`` directory to choose."""
    from msakit.training.checkpoint import load_model

    return load_model(seed_dirs(Path(run_dir))[0], device)


def _run_data_config(run: Path) -> dict:
    """The run's ``data`` config section; without a readable ``config.json`` (a ``best/`` folder
    shipped on its own), the settings ``best/model.json`` records of how the model reads its
    input (truncation, ``data.context``); ``{}`` for older runs without either."""
    import json

    run = Path(run)
    best = run / "best" if (run / "best").is_dir() else run
    home = run.parent if best == run and (run / "model.json").is_file() else run  # given best/ itself: the run is above it
    for path in (home / "config.json", best / "model.json"):  # model.json: the settings it records (save_best_model)
        try:
            data = json.loads(path.read_text()).get("data")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def _max_text_tokens(data: dict) -> int:
    """The run's ``data.max_text_tokens`` (what its training truncated transcripts to), from its
    ``data`` config section."""
    value = data.get("max_text_tokens", 128)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 2 else 128


def check_feature_dims(split, meta: dict, context, what: str, model: str) -> None:
    """The audio/vision widths of ``split`` are those the model was trained on (with
    ``data.context`` on audio/vision, the model reads twice the data's width)."""
    modalities = tuple(meta["input_dims"]["modalities"])
    for m, key in (("a", "audio_dim"), ("v", "vision_dim")):
        if m in modalities and context.frame_width(m, split.feature_dim(m)) != meta["input_dims"][key]:
            trained = meta["input_dims"][key] // 2 if context.reads(m) else meta["input_dims"][key]
            raise ConfigError(f"{what}: {m!r} features have {split.feature_dim(m)} dims but {model} was trained on {trained}; "
                              "use data with the same feature extractor")


def run_context(run: Path, data: dict | None = None):
    """The run's ``data.context``/``data.context_side`` as a ``ContextSpec`` (off for runs made
    before context existed); ``data``: its ``data`` config section, when already read."""
    from msakit.data.context import ContextSpec

    data = _run_data_config(run) if data is None else data
    k, side, modalities = data.get("context", 0), data.get("context_side", "both"), data.get("context_modalities", "t")
    encoder = data.get("context_encoder", "join")
    try:
        return ContextSpec(k if isinstance(k, int) else 0, side if isinstance(side, str) else "both", modalities,
                           encoder if isinstance(encoder, str) else "join")
    except ConfigError:
        return ContextSpec()


def predict_split(run: Path, data: str | Path, kind: str | None, split: str, device: str, require_labels: bool = True, loaded=None,
                  absent: dict | None = None, cache: bool = True):
    """Predictions of the run's model on ``split`` of ``data``; ``loaded``: the run's
    ``load_run`` result already in memory (a server loads it once), else it is loaded here.
    ``absent`` (``{m: bool per row}``): rows given modality ``m`` as absent, by the convention
    training's modality dropout uses (``msakit.data.corruption.ABSENT_CONVENTION``, applied after
    standardisation). ``cache=False`` reads ``data`` without the feature cache (a temporary file
    leaves nothing behind)."""
    import numpy as np

    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder
    from msakit.training.trainer import predict_builder, resolve_device

    torch_device = resolve_device(device)
    model, tokenizer, meta = loaded if loaded is not None else load_run(run, str(torch_device))
    from msakit.extract.sidecar import check_data_matches_run

    check_data_matches_run(run, data)  # features from `msakit extract`: same extractor as the run's
    kind = kind or meta["kind"]
    modalities = tuple(meta["input_dims"]["modalities"])
    dataset = load_dataset(data, kind, modalities, splits=(split,), require_labels=require_labels, cache=cache)
    type(model).check_data(dataset, modalities)  # e.g. MAG-BERT refuses unaligned frames here too
    target = dataset[split]
    data_config = _run_data_config(run)  # read once: truncation and context as the run was trained
    context = run_context(run, data_config)
    check_feature_dims(target, meta, context, f"{data}", f"the model at {run}")
    from msakit.data.standardize import load_run_standardizer

    standardizer = load_run_standardizer(run)  # the training split's statistics, unchanged
    if standardizer is not None:
        target = standardizer.apply(target)
    absent = {m: np.asarray(a, dtype=bool) for m, a in (absent or {}).items() if m in modalities and np.any(a)}
    widths = meta.get("absent_frames") or {}  # the training split's width (runs saved before it: this data's)
    for m, key in (("a", "audio"), ("v", "vision")):
        if m in absent:  # all frames zero, length the training split's full width: what training's dropout gave
            frames, lengths = np.array(getattr(target, key), dtype=np.float32), np.array(getattr(target, f"{key}_lengths"))
            width = int(widths.get(m) or frames.shape[1])
            if width > frames.shape[1]:
                frames = np.pad(frames, ((0, 0), (0, width - frames.shape[1]), (0, 0)))
            frames[absent[m]] = 0.0
            lengths[absent[m]] = width
            target = dataclasses.replace(target, **{key: frames, f"{key}_lengths": lengths})
    from msakit.encoders.text import text_token_limit

    if context.on and set(context.modalities) & set(modalities):
        from msakit.data.context import video_of

        alone = sum(video_of(i) is None for i in target.ids)
        if alone:
            import sys

            print(f"note: {data}: {alone} of {len(target)} sample(s) name no video ('<video_id>$_$<clip_id>'): the run reads each "
                  f"utterance with its neighbours ({context.describe()}), these are read alone", file=sys.stderr)
    builder = BatchBuilder(target, modalities, tokenizer, text_token_limit(model, _max_text_tokens(data_config)), withheld=absent,
                           context=context)  # absent rows as training's dropout gave them, context included
    return predict_builder(model, builder, 64, torch_device), target, kind


def evaluate(run_dir: str | Path, data: str | Path = "synthetic", *, kind: str | None = None, split: str = "test", device: str = "auto") -> dict:
    """Metrics of a trained run on ``split`` of ``data``: per seed, and mean ± std if several."""
    import json

    per_seed, notes, ulgm_labels = {}, [], {}
    for seed_dir in seed_dirs(Path(run_dir)):
        note = unfinished_note(seed_dir)
        if note:
            notes.append(note)
        predictions, target, used_kind = predict_split(seed_dir, data, kind, split, device)
        per_seed[seed_dir.name] = regression_metrics(predictions["m"], target.labels["m"], used_kind)
        try:  # what training recorded: ULGM's generated labels vs the annotated ones (its training split)
            recorded = json.loads((seed_dir / "results.json").read_text()).get("ulgm_labels")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded:
            ulgm_labels[seed_dir.name] = recorded
    out = {"per_seed": per_seed, "summary": summarize_seeds(list(per_seed.values())), "warnings": notes}
    if ulgm_labels:
        out["ulgm_labels"] = {"per_seed": ulgm_labels, "summary": summarize_ulgm_labels(ulgm_labels)}
    return out


def unfinished_note(seed_dir: Path) -> str | None:
    """A line saying ``seed_dir`` did not finish training, and which epoch's weights ``best/``
    holds (the best validation MAE so far); ``None`` for a finished run."""
    import json

    if (seed_dir / "results.json").exists():
        return None
    best_epoch, best = None, None
    try:
        for line in (seed_dir / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            if best is None or record["valid_MAE"] < best:
                best_epoch, best = record["epoch"], record["valid_MAE"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    which = f"the weights of epoch {best_epoch} (best validation MAE so far, {best:.4f})" if best_epoch is not None else "its best weights so far"
    return (f"{seed_dir} did not finish training (no results.json); these metrics use {which}; "
            "finish it with `msakit train ... --resume` for the final model")


def run_files(seed_dir: Path) -> list[Path]:
    """The files of a trained run that a command reading it must never write over."""
    names = ("config.json", "results.json", "metrics.jsonl", "summary.json", "last.pt", "test_predictions.csv")
    # everything below it too: best/, and a text stage's or fusion candidate's own run (fusion=auto)
    inside = sorted(p for p in seed_dir.rglob("*") if p.is_file()) if seed_dir.is_dir() else []
    return [seed_dir / n for n in names] + [seed_dir.parent / "summary.json"] + inside


def predict(run_dir: str | Path, data: str | Path, output_csv: str | Path, *, kind: str | None = None, split: str = "test", device: str = "auto",
            overwrite: bool = False) -> Path:
    """Write a CSV of predictions (id, [label,] prediction, unimodal predictions) for ``split``.

    The file needs only that split, and labels are optional: this is how a trained model is
    run on one's own clips (features extracted the way the training data's were). ``output_csv``
    is never one of the inputs nor inside the run, and an existing file is replaced only with
    ``overwrite``.
    """
    from msakit.outputs import check_outputs
    from msakit.training.trainer import write_predictions_csv

    seed_dir = seed_dirs(Path(run_dir))[0]
    output_csv, = check_outputs([("--output", output_csv)], inputs=[data, *run_files(seed_dir)], overwrite=overwrite,
                                protected=[("the run being read", run_root(run_dir))])
    note = unfinished_note(seed_dir)
    if note:
        import sys

        print(f"warning: {note}", file=sys.stderr)
    predictions, target, _ = predict_split(seed_dir, data, kind, split, device, require_labels=False)
    write_predictions_csv(output_csv, target.ids, target.labels.get("m"), predictions)
    return output_csv


__all__ = ["TrainSummary", "check_run_dir", "check_seeds", "default_run_dir", "evaluate", "fit_defaults_to_data", "load_run",
           "predict", "predict_split", "run_files", "seed_dirs", "train", "unfinished_note"]
