"""Hyperparameter sweeps on Optuna, selected on validation only.

``sweep()`` (``msakit sweep`` on the command line) searches a space of settings (a small TOML
file, or the model's default space below) for the lowest **validation MAE of ŷ_m**. The
search loads the dataset *without its test split* (``splits=("train", "valid")``), so no
trial can read a test label, and every trial is a normal run directory under
``OUTPUT/trials/`` (its ``results.json`` is evaluated on ``valid``). Trials report their
validation MAE after every epoch and a median pruner stops the unpromising ones (from epoch
``prune_after`` on, once ``pruner_startup_trials`` trials have finished).

Storage: an SQLite file ``OUTPUT/study.db`` by default; any SQLAlchemy URL
(``postgresql://user:pass@host/db``) lets any number of workers on any number of machines
join one study: run the same command with the same ``--storage`` and ``--study`` on each.
Workers share the trial budget (``n_trials`` counts finished, pruned and running trials of
the study, so a late worker does not add a budget of its own; at most one extra trial per
worker may start at the very end). Each running trial sends a heartbeat; a trial whose
worker died (killed, machine lost) is marked FAIL once its heartbeat is ``grace_period``
seconds old and retried with the same settings by the next worker to start a trial, so
restarting a sweep continues it.

Finally (``final=True``, or ``msakit sweep --final-only`` once all workers are done) the
best settings are retrained with ``seeds`` (five by default) on the full data, and their
*test* metrics reported as mean ± std: the only time the test split is read. Beside them:
``trials.csv`` / ``trials.md`` (every trial), ``history.png`` and ``importances.png``, and
``sweep.json`` (best settings, final metrics, where the time went).

Search space file::

    # one table per setting, named as in --set
    [space."alignment.weight"]
    low = 0.01
    high = 10.0
    log = true                 # floats: uniform or log-uniform
    [space."alignment.align_dim"]
    choices = [16, 32, 64]     # categorical
    [space."train.batch_size"]
    low = 8
    high = 32
    step = 8                   # integers when low and high are
    [fixed]                    # optional: settings every trial uses
    "train.max_epochs" = 10
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msakit.errors import ConfigError, DataError

# Each model's documented default space: used when no space file is given.
_SELF_MM_SPACE = {
    "model.lr_other": {"low": 1e-4, "high": 1e-2, "log": True},
    "model.lr_audio": {"low": 5e-4, "high": 2e-2, "log": True},
    "model.lr_video": {"low": 5e-4, "high": 2e-2, "log": True},
    "model.post_fusion_dropout": {"low": 0.0, "high": 0.5},
}
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    # The flagship: the alignment weight λ (log scale) and the aligned feature size.
    "dma": {
        "alignment.weight": {"low": 0.01, "high": 10.0, "log": True},
        "alignment.align_dim": {"choices": [16, 32, 64]},
    },
    "self_mm": _SELF_MM_SPACE,
    # ALMT: its one learning rate and decoupled weight decay, the fusion depth (MOSI 2, MOSEI/SIMS 4).
    "almt": {
        "model.lr": {"low": 1e-5, "high": 1e-3, "log": True},
        "model.weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
        "model.fusion_depth": {"choices": [1, 2, 4]},
        "train.batch_size": {"choices": [16, 32, 64]},
    },
    # TETFN: Self-MM's per-subnet learning rates (its reference values differ per dataset by 10x) and the residual dropout.
    "tetfn": {
        "model.lr_other": {"low": 1e-4, "high": 3e-3, "log": True},
        "model.lr_audio": {"low": 1e-4, "high": 5e-3, "log": True},
        "model.lr_video": {"low": 1e-4, "high": 5e-3, "log": True},
        "model.res_dropout": {"low": 0.0, "high": 0.3},
    },
    # CENET: one learning rate for the encoder and CE (reference 2e-6 to 3e-5), weight decay, head dropout.
    "cenet": {
        "model.lr": {"low": 2e-6, "high": 1e-4, "log": True},
        "model.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "model.head_dropout": {"low": 0.0, "high": 0.3},
    },
}
_GENERIC_SPACE = {"train.batch_size": {"choices": [16, 32, 64]}}

SEARCH_SPLITS = ("train", "valid")
DEFAULT_FINAL_SEEDS = (1111, 1112, 1113, 1114, 1115)


@dataclass
class SweepSummary:
    output_dir: Path
    study_name: str
    storage: str
    best_params: dict[str, Any] | None
    best_valid_mae: float | None
    n_complete: int
    final: dict | None  # {"per_seed", "summary", "evaluated_split", "run_dir"} after the final stage


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("msakit sweep needs Optuna: pip install 'msakit[sweep]' (or make install)") from None
    return optuna


# ---- the search space ------------------------------------------------------------------------
def load_space(path: str | Path | None, model: str) -> tuple[dict[str, dict], dict[str, Any]]:
    """``(space, fixed)`` from a TOML file, or the model's default space (no fixed settings)."""
    if path is None:
        return dict(DEFAULT_SPACES.get(model, _GENERIC_SPACE)), {}
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: search space file not found")
    try:
        payload = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    unknown = set(payload) - {"space", "fixed"}
    if unknown or not isinstance(payload.get("space"), dict) or not payload["space"]:
        raise ConfigError(f"{path}: expected a [space.\"section.key\"] table per setting (and optionally [fixed]); found {sorted(payload)}")
    space = payload["space"]
    fixed = payload.get("fixed", {})
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: [fixed] must be a table of \"section.key\" = value")
    for name, spec in space.items():
        check_space_entry(name, spec, f"{path}: space {name!r}")
        if name in fixed:
            raise ConfigError(f"{path}: {name!r} is both in [fixed] and in the search space; keep it in one of them")
    return space, dict(payload.get("fixed", {}))


_SPEC_KEYS = {"low", "high", "log", "step", "choices"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_space_entry(name: str, spec: Any, where: str) -> None:
    """The shape of one search-space entry: a range (``low < high``, finite numbers, ``step > 0``,
    ``log`` with ``low > 0``) or a non-empty list of plain ``choices``. Whether each value is a
    valid setting is checked by ``check_space_values``, with the same rules as ``--set``."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a table with low/high or choices")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; use low, high, step, log or choices")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        for value in choices:
            if not isinstance(value, (int, float, str, bool)) or (isinstance(value, float) and not math.isfinite(value)):
                raise ConfigError(f"{where}: choice {value!r} must be a finite number, a string or true/false")
        if set(spec) - {"choices"}:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        return
    if not ("low" in spec and "high" in spec):
        raise ConfigError(f"{where}: give low and high (a range) or choices (a list)")
    for key in ("low", "high"):
        if not _is_number(spec[key]) or not math.isfinite(spec[key]):
            raise ConfigError(f"{where}: {key}={spec[key]!r} must be a finite number")
    if not spec["low"] < spec["high"]:
        raise ConfigError(f"{where}: low={spec['low']} must be below high={spec['high']}")
    if "log" in spec and not isinstance(spec["log"], bool):
        raise ConfigError(f"{where}: log={spec['log']!r} must be true or false")
    if spec.get("log") and spec["low"] <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0")
    if "step" in spec:
        step = spec["step"]
        if not _is_number(step) or not math.isfinite(step) or step <= 0:
            raise ConfigError(f"{where}: step={step!r} must be a number > 0")
        if spec.get("log"):
            raise ConfigError(f"{where}: a log scale takes no step")
        if step > spec["high"] - spec["low"]:
            raise ConfigError(f"{where}: step={step} is wider than the range {spec['low']}..{spec['high']}")
        if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not isinstance(step, int):
            raise ConfigError(f"{where}: an integer range takes an integer step (got {step!r})")


def space_corners(space: dict[str, dict]) -> list[dict[str, Any]]:
    """Points that put every setting at each end of its range and at each of its choices (the
    other settings at their first value): a valid-range rule holds on the whole space iff it
    holds there, as every setting's valid range is an interval or a set."""
    first = _example_point(space)
    points = [first]
    for name, spec in space.items():
        values = spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]
        points += [{**first, name: value} for value in values]
    return points


def _suggest(trial, name: str, spec: dict) -> Any:
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    low, high = spec["low"], spec["high"]
    if isinstance(low, int) and isinstance(high, int) and not spec.get("log_float"):
        return trial.suggest_int(name, low, high, step=int(spec.get("step", 1)), log=bool(spec.get("log", False)))
    return trial.suggest_float(name, float(low), float(high), log=bool(spec.get("log", False)),
                               step=float(spec["step"]) if "step" in spec else None)


def _merge(overrides: dict | None, flat: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    from msakit.config import SECTIONS

    merged = {section: dict((overrides or {}).get(section, {})) for section in SECTIONS}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        if section not in merged or not name:
            raise ConfigError(f"{where}: {key!r} must be section.key with section one of {', '.join(SECTIONS)}")
        merged[section][name] = value
    return merged


def _example_point(space: dict) -> dict[str, Any]:
    return {k: (v["choices"][0] if "choices" in v else v["low"]) for k, v in space.items()}


# ---- storage ---------------------------------------------------------------------------------
def open_storage(url: str, heartbeat_interval: int = 30, grace_period: int | None = None):
    """An Optuna RDB storage with heartbeats: a dead worker's trial is failed and retried."""
    optuna = _optuna()
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}  # several local workers wait for the lock
    else:
        engine_kwargs = {"pool_pre_ping": True}
    import warnings

    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in use since 2.8
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period or 4 * heartbeat_interval,
                    heartbeat_stale_trial_callback=retry(max_retry=2),
                )
        except Exception as error:  # noqa: BLE001 - driver errors vary; the user needs the URL and the cause
            racing = ("already exists", "UNIQUE constraint", "duplicate key", "database is locked")
            if any(r in str(error) for r in racing) and attempt < 4:
                time.sleep(0.5 + attempt)  # another worker is creating the tables right now
                continue
            raise ConfigError(f"--storage {_shown_url(url)}: cannot open the study database ({type(error).__name__}: {str(error).splitlines()[0]})") from None


def _fail_stale_trials(study) -> None:
    import warnings

    optuna = _optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _count(study, states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


# ---- the sweep -------------------------------------------------------------------------------
def sweep(
    model: str = "dma",
    data: str | Path = "synthetic",
    *,
    output_dir: str | Path,
    kind: str = "mosi",
    space: str | Path | None = None,
    n_trials: int = 20,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    seeds: tuple[int, ...] | list[int] = DEFAULT_FINAL_SEEDS,
    final: bool = True,
    final_only: bool = False,
    sampler_seed: int | None = None,
    pruner_startup_trials: int = 5,
    prune_after: int = 3,
    heartbeat_interval: int = 30,
    grace_period: int | None = None,
    command: str | None = None,
    log=print,
) -> SweepSummary:
    """Run (or join, or continue) a study; then, with ``final``, retrain the best settings
    over ``seeds`` and write the table, figures and ``sweep.json``. See the module docstring."""
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is printed below
    from msakit.config import resolve_config
    from msakit.data import load_dataset
    from msakit.data.types import FeatureData
    from msakit.training.trainer import Trainer

    if n_trials < 0:
        raise ConfigError(f"--n-trials={n_trials}: must be >= 0")
    if final_only and not final:
        raise ConfigError("--final-only and --no-final contradict each other: --final-only runs only the final retraining, --no-final skips it")
    if isinstance(prune_after, bool) or not isinstance(prune_after, int) or prune_after < 0:
        raise ConfigError(f"--prune-after={prune_after!r}: must be a whole number of epochs >= 0")
    if isinstance(heartbeat_interval, bool) or not isinstance(heartbeat_interval, int) or heartbeat_interval < 1:
        raise ConfigError(f"--heartbeat={heartbeat_interval!r}: must be a whole number of seconds >= 1")
    from msakit.outputs import check_output_dir

    check_output_dir("--output", output_dir, inputs=[data, space])
    output_dir = Path(output_dir)
    storage_url = storage or f"sqlite:///{(output_dir / 'study.db').resolve()}"
    stem = "synthetic" if str(data) == "synthetic" else Path(data).stem
    study_name = study_name or f"{model}-{stem}"
    search_space, fixed = load_space(space, model)
    base = _merge(overrides, fixed, "fixed settings")
    base["train"].setdefault("progress", False)
    # Refuse an unknown or out-of-range setting now, not in every trial: every end of every
    # range and every choice goes through the same checks as --set.
    for point in space_corners(search_space):
        try:
            example = resolve_config(model, kind=kind, data_path=str(data), overrides=_merge(base, point, "search space"))
        except ConfigError as error:
            shown = {k: v for k, v in point.items() if k in search_space}
            raise ConfigError(f"search space{' ' + str(space) if space else ''}: {error} (at {shown})") from None
    example = resolve_config(model, kind=kind, data_path=str(data), overrides=_merge(base, _example_point(search_space), "search space"))

    output_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    store = open_storage(storage_url, heartbeat_interval, grace_period)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    # Never prune on the first epochs: early validation MAEs hardly separate the trials.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials, n_warmup_steps=prune_after)
    study = optuna.create_study(storage=store, study_name=study_name, direction="minimize", sampler=sampler, pruner=pruner, load_if_exists=True)
    study.set_user_attr("model", model)
    study.set_user_attr("data", str(data))
    study.set_user_attr("kind", kind)
    _fail_stale_trials(study)  # trials of workers that died while this one was away
    worker = f"{socket.gethostname()}:{os.getpid()}"

    if not final_only and n_trials > 0:
        t0 = time.perf_counter()
        # Never the test split: a feature pickle is read without it (and its cache holds none).
        search_data = load_dataset(data, kind, example.data.modalities, splits=SEARCH_SPLITS)
        if "test" in search_data.splits:  # a text-table directory reads every split: drop test here
            search_data = FeatureData(search_data.source, {k: v for k, v in search_data.splits.items() if k in SEARCH_SPLITS}, search_data.aligned, search_data.nonfinite_replaced)
        assert "test" not in search_data.splits, "the search must never hold the test split"
        timings["search_load_s"] = time.perf_counter() - t0

        def objective(trial) -> float:
            if sampler_seed is not None:
                # A seed per trial number, not per worker: workers given the same seed would
                # otherwise draw the same settings; a one-worker sweep stays reproducible.
                study.sampler = optuna.samplers.TPESampler(seed=sampler_seed * 1_000_003 + trial.number)
            params = {name: _suggest(trial, name, spec) for name, spec in search_space.items()}
            config = resolve_config(model, kind=kind, data_path=str(data), overrides=_merge(base, params, f"trial {trial.number}"))
            run_dir = output_dir / "trials" / f"trial_{trial.number:04d}"
            trial.set_user_attr("run_dir", str(run_dir))
            trial.set_user_attr("worker", worker)

            steps = itertools.count(1)
            # Progress inside the trial, one tick per epoch (each fusion candidate of
            # model.fusion=auto counts its own); shown on a terminal only, gone when it ends.
            from tqdm.auto import tqdm

            bar = tqdm(total=config.train.max_epochs, desc=f"trial {_position(study, n_trials)}", unit="epoch", leave=False, disable=None)

            def report(epoch: int, record: dict) -> None:
                bar.update(1)
                bar.set_postfix_str(f"valid MAE {record['valid_MAE']:.4f}")
                # one step per epoch trained: model.fusion=auto trains two candidates one after the other
                trial.report(record["valid_MAE"], next(steps))
                trial.set_user_attr("epochs", max(epoch, trial.user_attrs.get("epochs", 0)))  # epochs of the longest candidate
                if trial.should_prune():
                    trial.set_user_attr("pruned_at_epoch", epoch)
                    for checkpoint in run_dir.rglob("last.pt"):  # never resumed: free the disk
                        checkpoint.unlink(missing_ok=True)
                    bar.close()
                    log(f"trial {_position(study, n_trials)}: pruned after epoch {epoch} (valid MAE {record['valid_MAE']:.4f}, "
                        f"worse than the median of earlier trials there){_best_so_far(study)}  {rounded(params)}")
                    raise optuna.TrialPruned(f"valid MAE {record['valid_MAE']:.4f} after epoch {epoch}")

            trainer = Trainer(config, run_dir, data=search_data)
            trainer.timings["load_s"] = timings["search_load_s"]  # one load per worker, shared by its trials
            bar.total = max(1, len(trainer.candidates)) * config.train.max_epochs
            try:
                result = trainer.fit(callback=report)
            finally:
                bar.close()
            if result.evaluated_split != "valid":  # pragma: no cover - guarded above
                raise AssertionError("a search trial was evaluated on another split than valid")
            trial.set_user_attr("best_epoch", result.best_epoch)
            trial.set_user_attr("valid_Corr", result.metrics.get("Corr"))
            log(f"trial {_position(study, n_trials)}: valid MAE {result.metrics['MAE']:.4f}{_best_so_far(study, result.metrics['MAE'])}  "
                f"{rounded(params)}")
            return float(result.metrics["MAE"])

        states = optuna.trial.TrialState
        t0 = time.perf_counter()
        waiting_since = None
        while True:
            _fail_stale_trials(study)  # a dead worker's trial: FAIL, re-queued with its settings
            done = _count(study, (states.COMPLETE, states.PRUNED))
            running = _count(study, (states.RUNNING,))
            if done >= n_trials:
                break
            if _count(study, (states.FAIL,)) > 2 * n_trials:
                raise DataError(f"study {study_name!r}: more than {2 * n_trials} failed trials; see {output_dir / 'trials.csv'} and the trials' run directories")
            if done + running < n_trials or _count(study, (states.WAITING,)):
                study.optimize(objective, n_trials=1, catch=(FloatingPointError,), gc_after_trial=False)
                waiting_since = None
                continue
            # The rest of the budget is running in other workers: wait until each finishes, or
            # dies (its heartbeat goes stale) and is re-queued for whoever is still here.
            if waiting_since is None:
                waiting_since = time.perf_counter()
                log(f"{running} trial(s) running in other workers; waiting for them (a dead one is retried after {store.grace_period} s)")
            time.sleep(min(heartbeat_interval, 5))
        timings["search_s"] = time.perf_counter() - t0

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    summary = SweepSummary(output_dir, study_name, _shown_url(storage_url), best.params if best else None, best.value if best else None, len(complete), None)
    if final and best is None:
        log(f"study {study_name!r} has no complete trial yet: nothing to retrain")
    if final and best is not None:
        running = _count(study, (optuna.trial.TrialState.RUNNING,))
        if running and not final_only:
            log(f"{running} trial(s) still running in other workers; run with --final-only once they finish")
        else:
            t0 = time.perf_counter()
            summary.final = _final_stage(model, data, kind, best, base, output_dir, seeds)
            timings["final_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    write_report(study, output_dir, summary, timings, command, model, str(data), kind, search_space)
    return summary


def _shown_url(url: str) -> str:
    """The storage URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':')[0]}:***@{host}"
    return url


def _final_stage(model, data, kind, best, base, output_dir: Path, seeds) -> dict:
    """Retrain the best settings over ``seeds`` on the full data; test metrics mean ± std."""
    from msakit.training.runs import train

    overrides = _merge(base, best.params, "best trial")
    run_dir = output_dir / "final"
    marker = run_dir / "best_trial.json"
    if marker.exists() and json.loads(marker.read_text()).get("params") != best.params:
        # The study found better settings since the last final stage: start it over.
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"number": best.number, "params": best.params, "valid_MAE": best.value}))
    result = train(model, data, kind=kind, seeds=list(seeds), run_dir=run_dir, overrides=overrides, resume=True)
    return {"run_dir": str(run_dir), "evaluated_split": result.evaluated_split, "per_seed": {str(k): v for k, v in result.per_seed.items()}, "summary": result.summary}


def rounded(params: dict) -> dict:
    """Settings as printed: floats to 4 significant digits (``1.2356125459252507`` -> ``1.236``)."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in params.items()}


def _position(study, n_trials: int) -> str:
    """``k/N``: this trial's place among the study's finished (complete or pruned) trials."""
    import optuna

    done = _count(study, (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    return f"{min(done + 1, n_trials) if n_trials else done + 1}/{n_trials}"


def _best_so_far(study, this: float | None = None) -> str:
    """``"; best so far 0.7123 (number 3 in trials.md)"`` over the complete trials and ``this`` one's value."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.value is not None]
    best = min(complete, key=lambda t: t.value, default=None)
    if this is not None and (best is None or this <= best.value):
        return "; best so far: this one"
    return f"; best so far {best.value:.4f} (number {best.number} in trials.md)" if best is not None else ""


# ---- the report ------------------------------------------------------------------------------
def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "valid_MAE": t.value,
            **{f"param:{k}": v for k, v in t.params.items()},
            "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),  # epochs trained (fusion=auto reports 2 candidates' epochs)
            "retry_of": t.system_attrs.get("failed_trial"),  # a trial whose worker died, re-run with its settings
            "seconds": None if duration is None else round(duration, 2),
            "worker": t.user_attrs.get("worker"),
            "run_dir": t.user_attrs.get("run_dir"),
        })
    return rows


def write_report(study, output_dir: Path, summary: SweepSummary, timings: dict, command, model, data, kind, space) -> None:
    from msakit.metrics import format_table
    from msakit.training.checkpoint import atomic_write, write_json

    # Every worker writes the report when it stops: each file is replaced whole, never mixed.
    rows = trial_rows(study)
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def write_csv(path: Path) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(output_dir / "trials.csv", write_csv)
    fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    shown = [k for k in keys if k not in ("run_dir", "worker")]
    lines = [f"# Sweep `{summary.study_name}`: {model} on {data} ({kind}), objective: validation MAE of ŷ_m", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    if summary.final:
        lines += [format_table(summary.final["summary"], title=f"best settings {rounded(summary.best_params or {})} retrained over {len(summary.final['per_seed'])} seed(s): {summary.final['evaluated_split']} metrics"), ""]
    lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k in shown) + " |" for r in rows]
    atomic_write(output_dir / "trials.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    figures = _figures(study, output_dir)
    write_json(output_dir / "sweep.json", {
        "command": command,
        "model": model, "data": data, "kind": kind,
        "study": summary.study_name, "storage": summary.storage,
        "objective": "minimize validation MAE of y_m (the test split is not loaded during the search)",
        "space": space,
        "n_trials": len(rows),
        "states": {s: sum(1 for r in rows if r["state"] == s) for s in sorted({r["state"] for r in rows})},
        "best": None if summary.best_params is None else {"params": summary.best_params, "valid_MAE": summary.best_valid_mae},
        "final": summary.final,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "figures": figures,
    })


def _figures(study, output_dir: Path) -> list[str]:
    """Optimisation history and parameter importances (Optuna's matplotlib plots)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optuna = _optuna()
    written = []
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    plots = [("history.png", optuna.visualization.matplotlib.plot_optimization_history)]
    if len(complete) >= 2 and len(study.best_trial.params) >= 1:
        plots.append(("importances.png", optuna.visualization.matplotlib.plot_param_importances))
    for name, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(7, 4.5)
            fig.tight_layout()
            from msakit.training.checkpoint import atomic_write

            atomic_write(output_dir / name, lambda p: fig.savefig(p, dpi=110, format="png"))
            plt.close(fig)
            written.append(name)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:  # too few distinct trials
            (output_dir / f"{name}.txt").write_text(f"not drawn: {error}\n")
    return written


__all__ = ["DEFAULT_SPACES", "SweepSummary", "load_space", "open_storage", "sweep"]
