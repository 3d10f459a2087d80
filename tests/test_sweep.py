"""Sweeps on Optuna: end to end on SQLite, two workers sharing a study, a killed worker's trial
failed and retried on restart, the test split never read, and a real PostgreSQL server."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="msakit[sweep] (optuna) is not installed")

from msakit.data.mmsa import write_mmsa_pickle  # noqa: E402
from msakit.data.safe_pickle import safe_load  # noqa: E402
from msakit.workflows.sweep import sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Audio + vision only (no text encoder): each tiny trial takes about a second.
FAST = ["--set", "data.modalities=a,v", "--set", "train.num_threads=1", "--set", "train.batch_size=16"]


def _fast(**train):
    return {"data": {"modalities": "a,v"}, "train": {"num_threads": 1, "batch_size": 16, "progress": False, **train}}


def _rows(output: Path) -> list[dict]:
    with open(output / "trials.csv") as f:
        return list(csv.DictReader(f))


def _worker(output: Path, *args: str, cache: str) -> subprocess.Popen:
    env = {**os.environ, "MSAKIT_CACHE": cache, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "msakit.cli", "sweep", "--output", str(output), "--no-final", *FAST, *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_sweep_end_to_end_on_sqlite(small_synthetic, tmp_path):
    output = tmp_path / "sweep"
    result = sweep("dma", small_synthetic, output_dir=output, n_trials=3, seeds=(1, 2), overrides=_fast(max_epochs=2), sampler_seed=0, log=lambda *_: None)
    rows = _rows(output)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 and (output / "study.db").exists()
    for r in rows:  # every trial is a normal run directory, evaluated on valid
        run = json.loads((Path(r["run_dir"]) / "results.json").read_text())
        assert run["evaluated_split"] == "valid" and abs(run["metrics"]["MAE"] - float(r["valid_MAE"])) < 1e-9
        assert run["timings"]["load_s"] > 0 and run["timings"]["train_s"] > 0
        assert {"alignment.weight", "alignment.align_dim"} <= {k.removeprefix("param:") for k in r}
    best = min(rows, key=lambda r: float(r["valid_MAE"]))
    assert result.best_valid_mae == pytest.approx(float(best["valid_MAE"]))
    report = json.loads((output / "sweep.json").read_text())
    assert report["final"]["evaluated_split"] == "test" and sorted(report["final"]["per_seed"]) == ["1", "2"]
    assert report["final"]["summary"]["MAE"]["n"] == 2 and report["states"] == {"COMPLETE": 3}
    # The final runs use the best trial's settings.
    final = json.loads((output / "final" / "seed_1" / "config.json").read_text())
    assert final["alignment"]["align_dim"] == report["best"]["params"]["alignment.align_dim"]
    assert (output / "history.png").stat().st_size > 1000 and (output / "importances.png").stat().st_size > 1000
    # Restarting a finished sweep adds no trial and reuses the finished final seeds.
    again = sweep("dma", small_synthetic, output_dir=output, n_trials=3, seeds=(1, 2), overrides=_fast(max_epochs=2), log=lambda *_: None)
    assert len(_rows(output)) == 3 and again.final["per_seed"] == report["final"]["per_seed"]


def test_search_never_reads_the_test_split(small_synthetic, tmp_path, monkeypatch):
    # A file whose test split is unreadable (NaN labels are refused by the reader): the search
    # succeeds only if it never loads it; the final stage, which must, refuses it.
    data = safe_load(small_synthetic)
    data["test"]["regression_labels"] = np.full(len(data["test"]["id"]), np.nan, dtype=np.float32)
    poisoned = write_mmsa_pickle(tmp_path / "poisoned.pkl", data)
    import msakit.data

    calls = []
    real = msakit.data.load_dataset
    monkeypatch.setattr(msakit.data, "load_dataset", lambda *a, **k: calls.append(k.get("splits")) or real(*a, **k))
    sweep("dma", poisoned, output_dir=tmp_path / "s", n_trials=2, final=False, overrides=_fast(max_epochs=1), log=lambda *_: None)
    assert calls == [("train", "valid")]
    assert [r["state"] for r in _rows(tmp_path / "s")] == ["COMPLETE"] * 2
    assert not list((tmp_path / "s").rglob("test_predictions.csv"))
    with pytest.raises(ValueError, match="'test'.*NaN"):
        sweep("dma", poisoned, output_dir=tmp_path / "s", n_trials=2, final_only=True, seeds=(1,), overrides=_fast(max_epochs=1), log=lambda *_: None)


def _two_workers_share_one_study(small_synthetic, tmp_path, output: Path, storage: str | None = None, study_name: str = "dma-small", n_trials: int = 4):
    # The same --sampler-seed in both workers: they must still try different settings.
    args = ["--data", str(small_synthetic), "--n-trials", str(n_trials), "--epochs", "2", "--sampler-seed", "7"]
    if storage:
        args += ["--storage", storage, "--study", study_name]
    workers = [_worker(output, *args, cache=str(tmp_path / "cache")) for _ in range(2)]
    logs = [w.communicate(timeout=240)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    trials = optuna.load_study(study_name=study_name, storage=storage or f"sqlite:///{output / 'study.db'}").get_trials()
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    # Each trial ran once, in one worker, in its own run directory; the budget was shared
    # (at most one extra trial when both start the last one together).
    assert n_trials <= len(finished) <= n_trials + 1 and len(finished) == len(trials)
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.user_attrs["run_dir"] for t in trials}) == len(trials)
    assert len({t.params["alignment.weight"] for t in trials}) == len(trials), "two trials tried the same settings"
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "both workers should have run trials"
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert json.loads((Path(t.user_attrs["run_dir"]) / "results.json").read_text())["evaluated_split"] == "valid"


def test_two_workers_share_one_sqlite_study_without_duplicates(small_synthetic, tmp_path):
    _two_workers_share_one_study(small_synthetic, tmp_path, tmp_path / "sweep")


def test_killed_worker_leaves_study_consistent_and_restart_finishes_it(small_synthetic, tmp_path):
    output = tmp_path / "sweep"
    args = ["--data", str(small_synthetic), "--n-trials", "3", "--epochs", "6", "--heartbeat", "1", "--set", "train.early_stop=10"]
    worker = _worker(output, *args, cache=str(tmp_path / "cache"))
    metrics = output / "trials" / "trial_0001" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert worker.poll() is None, worker.communicate()[0]
        assert time.monotonic() < deadline, "the worker never reached its second trial"
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)  # mid-trial: trial 1 has finished an epoch, not the run
    worker.wait()
    storage = f"sqlite:///{output / 'study.db'}"
    states = [t.state for t in optuna.load_study(study_name="dma-small", storage=storage).get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]

    restarted = _worker(output, *args, cache=str(tmp_path / "cache"))
    log = restarted.communicate(timeout=240)[0]
    assert restarted.returncode == 0, log
    trials = optuna.load_study(study_name="dma-small", storage=storage).get_trials()
    by_state = {}
    for t in trials:
        by_state.setdefault(t.state.name, []).append(t)
    assert len(by_state["COMPLETE"]) == 3 and len(by_state["FAIL"]) == 1 and "RUNNING" not in by_state
    failed = by_state["FAIL"][0]
    assert failed.number == 1
    retry = [t for t in by_state["COMPLETE"] if t.system_attrs.get("failed_trial") == failed.number]
    assert len(retry) == 1 and retry[0].params == failed.params  # re-run with the dead trial's settings


POSTGRES_URL = os.environ.get("MSAKIT_TEST_POSTGRES_URL")


@pytest.mark.skipif(not POSTGRES_URL, reason="no PostgreSQL server: set MSAKIT_TEST_POSTGRES_URL (.ci/run installs and starts one)")
def test_two_workers_share_one_study_on_a_real_postgresql_server(small_synthetic, tmp_path):
    name = f"msakit-test-{os.getpid()}-{time.time_ns()}"
    try:
        _two_workers_share_one_study(small_synthetic, tmp_path, tmp_path / "sweep", storage=POSTGRES_URL, study_name=name)
    finally:
        try:
            optuna.delete_study(study_name=name, storage=POSTGRES_URL)
        except KeyError:
            pass
