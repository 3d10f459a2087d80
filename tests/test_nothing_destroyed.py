"""Nothing a user has is destroyed, and no wrong result is written (issue 17).

One rule for every file msakit writes (``msakit.outputs.check_outputs``): only the paths the
user named, never one of the command's inputs, an existing file only with ``--overwrite``, a
directory where a file is expected named by its option, all before any work. Then the inputs
checked at the boundary (sweep spaces, resume state), the feature cache treated as data the
reader checks, and the quiet wrong results made loud. Each case: one line, exit 2, the file
that was at risk unchanged, nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msakit.cli import main

pytestmark = pytest.mark.bad_input


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("note:", "warning:"))]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def data_copy(small_synthetic, tmp_path) -> Path:
    copy = tmp_path / "X.pkl"
    shutil.copy(small_synthetic, copy)
    return copy


# ---- predict: the output rule ------------------------------------------------------------------
def test_predict_never_writes_over_its_input_pickle_even_with_overwrite(capsys, trained_run, data_copy):
    before = digest(data_copy)
    for extra in ([], ["--overwrite"]):
        code, err = run_cli(capsys, "predict", trained_run, "--data", data_copy, "--output", data_copy, *extra)
        assert code == 2 and "--output" in one_line(err) and "inputs" in err
        assert digest(data_copy) == before


def test_predict_refuses_to_replace_an_existing_file_unless_overwrite(capsys, trained_run, small_synthetic, tmp_path):
    existing = tmp_path / "mine.csv"
    existing.write_text("my own notes\n")
    code, err = run_cli(capsys, "predict", trained_run, "--data", small_synthetic, "--output", existing)
    assert code == 2 and "--overwrite" in one_line(err) and existing.read_text() == "my own notes\n"
    code, _ = run_cli(capsys, "predict", trained_run, "--data", small_synthetic, "--output", existing, "--overwrite")
    assert code == 0 and existing.read_text().startswith("id,")


def test_predict_output_directory_is_an_error_naming_the_option(capsys, trained_run, small_synthetic, tmp_path):
    folder = tmp_path / "DIR"
    folder.mkdir()
    code, err = run_cli(capsys, "predict", trained_run, "--data", small_synthetic, "--output", folder)
    assert code == 2 and one_line(err).startswith("msakit predict: error: --output") and "directory" in err
    assert list(folder.iterdir()) == [] and not (tmp_path / "DIR.csv").exists()


def test_predict_never_writes_into_the_run_it_reads(capsys, trained_run, small_synthetic):
    weights = trained_run / "seed_1" / "best" / "model.safetensors"
    before = digest(weights)
    code, err = run_cli(capsys, "predict", trained_run, "--data", small_synthetic, "--output", weights, "--overwrite")
    assert code == 2 and "inside the run being read" in one_line(err) and digest(weights) == before


def test_synth_keeps_an_existing_file_and_refuses_an_empty_split(capsys, tmp_path):
    mine = tmp_path / "mine.pkl"
    mine.write_bytes(b"precious")
    code, err = run_cli(capsys, "synth", mine, "--n-train", "8", "--n-valid", "4", "--n-test", "4")
    assert code == 2 and "--overwrite" in one_line(err) and mine.read_bytes() == b"precious"
    fresh = tmp_path / "fresh.pkl"
    code, err = run_cli(capsys, "synth", fresh, "--n-train", "0")
    assert code == 2 and "--n-train" in one_line(err) and not fresh.exists()


# The property: whatever output path is chosen among a command's inputs and existing files, it is
# refused without --overwrite; with --overwrite an input is still never touched.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.sampled_from(["data", "weights", "config", "existing", "existing_dir"]), overwrite=st.booleans())
def test_output_rule_property_for_predict(capsys, trained_run, small_synthetic, tmp_path_factory, choice, overwrite):
    work = tmp_path_factory.mktemp("prop")
    data = work / "d.pkl"
    shutil.copy(small_synthetic, data)
    existing = work / "existing.csv"
    existing.write_text("keep me\n")
    (work / "existing_dir").mkdir()
    seed = trained_run / "seed_1"
    paths = {"data": data, "weights": seed / "best" / "model.safetensors", "config": seed / "config.json",
             "existing": existing, "existing_dir": work / "existing_dir"}
    inputs = {name: digest(p) for name, p in paths.items() if name in ("data", "weights", "config")}
    code, err = run_cli(capsys, "predict", trained_run, "--data", data, "--output", paths[choice], *(["--overwrite"] if overwrite else []))
    for name, before in inputs.items():
        assert digest(paths[name]) == before, f"{name} was written over"
    if choice == "existing" and overwrite:
        assert code == 0 and existing.read_text().startswith("id,")
    else:
        assert code == 2 and "--output" in one_line(err)
        assert existing.read_text() == "keep me\n" and list((work / "existing_dir").iterdir()) == []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overwrite=st.booleans(), directory=st.booleans())
def test_output_rule_property_for_synth(capsys, tmp_path_factory, overwrite, directory):
    work = tmp_path_factory.mktemp("synthprop")
    target = work / "target.pkl"
    if directory:
        target.mkdir()
    else:
        target.write_bytes(b"mine")
    code, err = run_cli(capsys, "synth", target, "--n-train", "6", "--n-valid", "3", "--n-test", "3", *(["--overwrite"] if overwrite else []))
    if overwrite and not directory:
        assert code == 0 and target.read_bytes() != b"mine"
    else:
        assert code == 2 and "output" in one_line(err)
        assert (target.is_dir() and not any(target.iterdir())) if directory else target.read_bytes() == b"mine"


def test_workflow_output_that_is_a_file_names_the_option(capsys, tmp_path, small_synthetic):
    a_file = tmp_path / "report.txt"
    a_file.write_text("mine")
    for argv in (["compare", "--models", "self_mm", "--output", a_file, "--epochs", "1"],
                 ["ablate", "--output", a_file, "--epochs", "1"]):
        code, err = run_cli(capsys, *argv, "--data", small_synthetic)
        assert code == 2 and "--output" in one_line(err) and "is a file" in err
    assert a_file.read_text() == "mine"


# ---- evaluate on a run that did not finish -----------------------------------------------------
def test_evaluate_on_an_interrupted_run_says_so_and_names_the_epoch(capsys, trained_run, small_synthetic, tmp_path):
    run = tmp_path / "interrupted"
    shutil.copytree(trained_run, run)
    (run / "seed_1" / "results.json").unlink()
    code, err = run_cli(capsys, "evaluate", run, "--data", small_synthetic)
    assert code == 0
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "did not finish" in warning[0] and "epoch 1" in warning[0]
    code, err = run_cli(capsys, "evaluate", trained_run, "--data", small_synthetic)
    assert code == 0 and "warning" not in err


# ---- resume state ----------------------------------------------------------------------------
@pytest.mark.parametrize("tamper", [{"epoch": 99}, {"epoch": -5}, {"best_mae": float("nan")}, {"best_epoch": 7}, {"stale": 3}])
def test_a_tampered_resume_checkpoint_is_refused_not_trusted(capsys, tmp_path, small_synthetic, tiny_bert_dir, tamper):
    run = tmp_path / "run"
    common = ["train", "--model", "self_mm", "--data", small_synthetic, "--run-dir", run, "--seeds", "1", "--quiet",
              "--set", f"model.text_encoder={tiny_bert_dir}"]
    with pytest.raises(KeyboardInterrupt):  # stop after the first epoch, leaving last.pt
        _train_one_epoch_then_interrupt(run, small_synthetic, tiny_bert_dir)
    last = next((run / "seed_1").rglob("last.pt"))  # the default fusion=auto: inside its first candidate
    payload = torch.load(last, weights_only=True)
    payload["state"].update(tamper)
    torch.save(payload, last)
    before = digest(last)
    code, err = run_cli(capsys, *common, "--epochs", "3", "--resume")
    line = one_line(err)
    assert code == 2 and "last.pt" in line and next(iter(tamper)) in line
    assert digest(last) == before and not (run / "seed_1" / "results.json").exists()


def _train_one_epoch_then_interrupt(run: Path, data: Path, tiny_bert_dir: Path) -> None:
    from msakit.training import runs

    def stop(epoch, record):
        raise KeyboardInterrupt

    config = runs.resolve_config("self_mm", data_path=str(data), overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "train": {"max_epochs": 3, "progress": False, "seed": 1}})
    from msakit.training.trainer import Trainer

    Trainer(config, run / "seed_1").fit(callback=stop)


# ---- sweep spaces ------------------------------------------------------------------------------
SPACES = {
    "high is text": ('[space."model.post_fusion_dropout"]\nlow = 0.0\nhigh = "x"\n', "high='x'"),
    "high is inf": ('[space."model.post_fusion_dropout"]\nlow = 0.0\nhigh = inf\n', "high=inf"),
    "step is 0": ('[space."train.batch_size"]\nlow = 8\nhigh = 32\nstep = 0\n', "step=0"),
    "a choice out of range": ('[space."train.batch_size"]\nchoices = [8, -4]\n', "train.batch_size=-4"),
    "a dropout of 1.5": ('[space."model.post_fusion_dropout"]\nlow = 0.0\nhigh = 1.5\n', "model.post_fusion_dropout=1.5"),
    "fixed and searched": ('[space."train.batch_size"]\nchoices = [8, 16]\n[fixed]\n"train.batch_size" = 8\n', "both in [fixed]"),
}


@pytest.mark.parametrize("case", sorted(SPACES))
def test_a_bad_search_space_is_refused_before_any_trial(capsys, tmp_path, small_synthetic, case):
    text, expected = SPACES[case]
    space = tmp_path / "space.toml"
    space.write_text(text)
    output = tmp_path / "sweep"
    code, err = run_cli(capsys, "sweep", "--model", "self_mm", "--data", small_synthetic, "--space", space, "--output", output,
                        "--n-trials", "1", "--epochs", "1")
    assert code == 2 and expected in one_line(err)
    assert not output.exists()  # nothing written: no study, no trial


@pytest.mark.parametrize("argv,expected", [
    (["--prune-after", "-1"], "--prune-after"),
    (["--heartbeat", "0"], "--heartbeat"),
    (["--no-final", "--final-only"], "--final-only and --no-final"),
])
def test_bad_sweep_options_blame_the_right_option(capsys, tmp_path, small_synthetic, argv, expected):
    output = tmp_path / "sweep"
    code, err = run_cli(capsys, "sweep", "--model", "self_mm", "--data", small_synthetic, "--output", output, "--n-trials", "1",
                        "--epochs", "1", *argv)
    assert code == 2 and one_line(err).startswith(f"msakit sweep: error: {expected}")
    assert not output.exists()


# ---- the feature cache is data the reader checks -----------------------------------------------
def _entry(cache_root: Path) -> Path:
    entries = [p for p in (cache_root / "features").iterdir() if not p.name.startswith(".") and p.name != "fingerprints"]
    assert len(entries) == 1
    return entries[0]


def _same(a, b) -> None:
    assert sorted(a.splits) == sorted(b.splits)
    for name in a.splits:
        x, y = a[name], b[name]
        assert x.ids == y.ids and x.raw_text == y.raw_text
        for k in x.labels:
            assert np.array_equal(x.labels[k], y.labels[k])
        for f in ("audio", "vision", "audio_lengths", "vision_lengths"):
            assert np.array_equal(getattr(x, f), getattr(y, f)), f


def _poison(entry: Path, how: str, elsewhere: Path) -> None:
    manifest_path = entry / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    array = manifest["splits"]["train"]["arrays"]["audio"]
    if how in ("parent path", "absolute path"):
        # a same-shaped array with other values, outside the entry
        original = np.load(entry / array["file"])
        np.save(elsewhere / "evil.npy", original + 100)
        array["file"] = "../evil.npy" if how == "parent path" else str(elsewhere / "evil.npy")
        if how == "parent path":
            shutil.copy(elsewhere / "evil.npy", entry.parent / "evil.npy")
    elif how == "text outside":
        other = json.loads((entry / manifest["splits"]["train"]["text"]).read_text())
        other["raw_text"] = ["poisoned"] * len(other["raw_text"])
        (elsewhere / "text.json").write_text(json.dumps(other))
        manifest["splits"]["train"]["text"] = str(elsewhere / "text.json")
    elif how == "array is a link":
        original = np.load(entry / array["file"])
        np.save(elsewhere / "evil.npy", original + 100)
        (entry / array["file"]).unlink()
        (entry / array["file"]).symlink_to(elsewhere / "evil.npy")
    elif how == "manifest is a list":
        manifest = [manifest]
    if how == "entry is a link":
        fake = elsewhere / "fake_entry"
        shutil.copytree(entry, fake)
        np.save(fake / array["file"], np.load(entry / array["file"]) + 100)
        shutil.rmtree(entry)
        entry.symlink_to(fake, target_is_directory=True)
        return
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["parent path", "absolute path", "text outside", "array is a link", "entry is a link", "manifest is a list"])
def test_a_poisoned_cache_entry_is_rebuilt_and_equals_a_plain_read(tmp_path, monkeypatch, how):
    from msakit.data import load_dataset
    from msakit.data.mmsa import read_mmsa_pickle
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    cache = tmp_path / "cache"
    monkeypatch.setenv("MSAKIT_CACHE", str(cache))
    source = write_synthetic(tmp_path / "f.pkl", SyntheticSpec(n_train=12, n_valid=4, n_test=4, seed=1))
    plain = read_mmsa_pickle(source, kind="mosi")
    load_dataset(source)  # builds the entry
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _poison(_entry(cache), how, elsewhere)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_dataset(source)
    _same(again, plain)
    assert any("damaged feature cache" in str(w.message) for w in caught), [str(w.message) for w in caught]
    _same(load_dataset(source), plain)  # the rebuilt entry is good


@pytest.mark.parametrize("where", ["a file", "unwritable"])
def test_an_unusable_cache_location_falls_back_to_a_plain_read_naming_msakit_cache(tmp_path, monkeypatch, where):
    from msakit.data import load_dataset
    from msakit.data.mmsa import read_mmsa_pickle
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    source = write_synthetic(tmp_path / "f.pkl", SyntheticSpec(n_train=12, n_valid=4, n_test=4, seed=2))
    cache = tmp_path / "cache"
    if where == "a file":
        cache.write_text("not a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root can write into any folder, so an unwritable cache cannot be made here")
        cache.mkdir(mode=0o500)
    monkeypatch.setenv("MSAKIT_CACHE", str(cache))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(source)
    _same(data, read_mmsa_pickle(source, kind="mosi"))
    messages = [str(w.message) for w in caught if "MSAKIT_CACHE" in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in caught]
