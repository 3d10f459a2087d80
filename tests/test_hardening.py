"""Attacks and mistakes, one class of defect per section: each ends in one clear line.

Every case here is a bad input a user (or someone handing them a run directory) can cause;
each asserts the exit code, that stderr is one line naming the culprit, and that nothing
else happened (no code ran, no run directory was left half-made, nothing was lost).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import msakit
from msakit.cli import main
from msakit.errors import MsakitError, RunDirError

pytestmark = pytest.mark.bad_input


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    copy = tmp_path / "shared run"
    shutil.copytree(trained_run, copy)
    return copy


# ---- 1. a run directory never runs code ------------------------------------------------------
EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('code ran')\n"


def plant_custom_code(folder: Path, config_name: str, marker: Path, auto_map: dict) -> None:
    (folder / "evil.py").write_text(EVIL.format(marker=str(marker)))
    config = json.loads((folder / config_name).read_text()) if (folder / config_name).exists() else {}
    config["auto_map"] = auto_map
    (folder / config_name).write_text(json.dumps(config))


def test_tokenizer_with_auto_map_is_refused_and_no_code_runs(run_copy, tmp_path):
    marker = tmp_path / "marker"
    plant_custom_code(run_copy / "seed_1" / "best" / "tokenizer", "tokenizer_config.json", marker, {"AutoTokenizer": ["evil.Tok", None]})
    with pytest.raises(RunDirError, match="tokenizer"):
        msakit.load_run(run_copy)
    from msakit.encoders.text import load_tokenizer

    with pytest.raises(RunDirError, match="auto_map"):  # the directory alone, named by a user as an encoder
        load_tokenizer(run_copy / "seed_1" / "best" / "tokenizer")
    assert not marker.exists()


def test_encoder_config_with_auto_map_in_model_json_is_refused(run_copy, tmp_path):
    meta_path = run_copy / "seed_1" / "best" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["text_encoder_config"]["auto_map"] = {"AutoModel": "evil.Model"}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match="custom code"):
        msakit.load_run(run_copy)


@pytest.mark.parametrize("name", ["loader.py", "weights.pkl", "extra.pt"])
def test_files_a_run_is_not_made_of_are_refused(run_copy, name):
    (run_copy / "seed_1" / "best" / name).write_bytes(b"anything")
    with pytest.raises(RunDirError, match="never loads code"):
        msakit.load_run(run_copy)


@pytest.mark.parametrize("terminal", [False, True], ids=["no-terminal", "terminal-answering-y"])
def test_encoder_directory_asking_to_run_code_never_runs_it(tiny_bert_dir, small_synthetic, tmp_path, terminal):
    """The CLI with a model directory whose config asks for custom code: refused outright, with
    no prompt, even when a terminal is attached and answers 'y' to everything."""
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_bert_dir, encoder)
    marker = tmp_path / "marker"
    plant_custom_code(encoder, "config.json", marker, {"AutoConfig": "evil.Config", "AutoModel": "evil.Model"})
    argv = [sys.executable, "-m", "msakit.cli", "train", "--data", str(small_synthetic), "--run-dir", str(tmp_path / "run"),
            "--epochs", "1", "--quiet", "--set", f"model.text_encoder={encoder}"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    if terminal:
        import pty

        leader, follower = pty.openpty()
        os.write(leader, b"y\ny\ny\ny\n")
        proc = subprocess.run(argv, stdin=follower, capture_output=True, text=True, env=env, timeout=300)
        os.close(follower)
        os.close(leader)
    else:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert "custom code" in line and str(encoder) in line
    assert "do you wish" not in (proc.stdout + proc.stderr).lower()
    assert not marker.exists()


# ---- 2. one error boundary ---------------------------------------------------------------------
def _train_args(data, bert, run, *extra):
    return [str(a) for a in ["train", "--data", data, "--run-dir", run, "--quiet", "--seeds", "1", "--set", f"model.text_encoder={bert}", *extra]]


@pytest.fixture
def killed_run(small_synthetic, tiny_bert_dir, tmp_path, monkeypatch, capsys) -> Path:
    """A run killed during its third epoch: two epochs finished, last.pt holds epoch 2."""
    from msakit.training.trainer import Trainer

    original = Trainer.train_epoch

    def dies_in_epoch_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_3)
    run = tmp_path / "killed"
    assert main(_train_args(small_synthetic, tiny_bert_dir, run, "--epochs", "4")) == 130
    monkeypatch.setattr(Trainer, "train_epoch", original)
    KILL_MESSAGES[run] = capsys.readouterr().err
    return run


KILL_MESSAGES: dict[Path, str] = {}


def test_ctrl_c_says_the_run_can_be_resumed_and_how(killed_run, small_synthetic, tiny_bert_dir, capsys):
    line = one_line(KILL_MESSAGES[killed_run])
    assert "interrupted" in line and "--resume" in line and str(killed_run) in line
    assert any((killed_run / "seed_1").rglob("last.pt"))  # the default fusion=auto: inside a candidate
    # ... and the command it prints works
    assert main(_train_args(small_synthetic, tiny_bert_dir, killed_run, "--epochs", "4", "--resume")) == 0


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"PK\x03\x04garbage"], ids=["garbage", "fake-zip"])
def test_corrupt_resume_checkpoint_is_refused_in_one_line(killed_run, small_synthetic, tiny_bert_dir, capsys, content):
    next((killed_run / "seed_1").rglob("last.pt")).write_bytes(content)
    code, err = run_cli(capsys, *_train_args(small_synthetic, tiny_bert_dir, killed_run, "--epochs", "4", "--resume"))
    assert code == 2 and "last.pt" in one_line(err)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_hostile_resume_checkpoint_is_refused_without_running_it(killed_run, small_synthetic, tiny_bert_dir, capsys, monkeypatch):
    torch.save({"state": _Payload()}, next((killed_run / "seed_1").rglob("last.pt")))
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    code, err = run_cli(capsys, *_train_args(small_synthetic, tiny_bert_dir, killed_run, "--epochs", "4", "--resume"))
    assert code == 2 and "last.pt" in one_line(err) and not called


def test_run_dir_that_is_a_file_is_refused_before_work(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    code, err = run_cli(capsys, *_train_args(small_synthetic, tiny_bert_dir, target))
    assert code == 2 and "is a file" in one_line(err) and target.read_text() == "x"
    code, err = run_cli(capsys, *_train_args(small_synthetic, tiny_bert_dir, target / "below"))
    assert code == 2 and "is a file" in one_line(err)


def test_output_that_is_a_directory_is_refused(trained_run, small_synthetic, tmp_path, capsys):
    code, err = run_cli(capsys, "predict", trained_run, "--data", small_synthetic, "--output", tmp_path)
    assert code == 2 and "is a directory" in one_line(err)


def test_run_missing_its_tokenizer_names_it(run_copy, small_synthetic, tmp_path, capsys):
    shutil.rmtree(run_copy / "seed_1" / "best" / "tokenizer")
    code, err = run_cli(capsys, "evaluate", run_copy, "--data", small_synthetic)
    assert code == 2 and "tokenizer" in one_line(err)


def test_a_bug_is_one_line_pointing_to_debug_and_debug_shows_it(monkeypatch, capsys):
    def broken(*args, **kwargs):
        return 1 / 0

    monkeypatch.setattr(msakit, "make_synthetic", broken)
    code, err = run_cli(capsys, "synth", "x.pkl")
    assert code == 70 and "internal error" in one_line(err) and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "synth", "x.pkl"])
    with pytest.raises(ZeroDivisionError):
        main(["synth", "x.pkl", "--debug"])


# ---- 3. settings are checked before any work starts ----------------------------------------------
@pytest.mark.parametrize(
    "extra, key",
    [
        (["--epochs", "0"], "train.max_epochs"),
        (["--set", "train.batch_size=-4"], "train.batch_size"),
        (["--set", "train.batch_size=0"], "train.batch_size"),
        (["--set", "model.post_text_dim=0"], "model.post_text_dim"),
        (["--set", "model.audio_hidden=0"], "model.audio_hidden"),
        (["--set", "train.grad_accumulation=0"], "train.grad_accumulation"),
        (["--set", "data.max_text_tokens=0"], "data.max_text_tokens"),
        (["--set", "model.lr_text=-1e-5"], "model.lr_text"),
        (["--set", "train.early_stop=0"], "train.early_stop"),
        (["--set", "alignment.weight=inf"], "alignment.weight"),
        (["--set", "alignment.weight=nan"], "alignment.weight"),
        (["--set", "alignment.pairs=a-v:-1"], "a-v"),
        (["--set", "model.post_fusion_dropout=1.5"], "model.post_fusion_dropout"),
        (["--set", "train.eval_batch_size=0"], "train.eval_batch_size"),
        (["--device", "tpu:7"], "tpu:7"),
        (["--seeds", "-5"], "seeds"),
        (["--seeds", "1,1"], "seeds"),
    ],
)
def test_invalid_settings_are_refused_before_anything_is_written(small_synthetic, tiny_bert_dir, tmp_path, capsys, extra, key):
    run = tmp_path / "run"
    code, err = run_cli(capsys, "train", "--data", small_synthetic, "--run-dir", run, "--quiet",
                        "--set", f"model.text_encoder={tiny_bert_dir}", *extra)
    assert code == 2 and key in one_line(err)
    assert not run.exists()


# ---- 4. the default model on data without its default alignment's modalities ---------------------
def test_default_model_on_a_text_table_skips_its_av_alignment_and_says_so(tiny_bert_dir, tmp_path, capsys):
    table = tmp_path / "text"
    table.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("dev", 8)):
        rows = [f"{'good great' if y > 0 else 'bad awful'} movie {i}\t{y:.2f}" for i, y in enumerate(rng.uniform(-3, 3, n))]
        (table / f"{split}.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    code = main(["train", "--data", str(table), "--modalities", "t", "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--quiet",
                 "--set", f"model.text_encoder={tiny_bert_dir}"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "a-v" in err and "skipped" in err
    assert json.loads((tmp_path / "run" / "seed_1111" / "config.json").read_text())["alignment"]["pairs"] == "none"
    # Asked for explicitly, the same pair is an error naming the setting.
    code, err = run_cli(capsys, "train", "--data", table, "--modalities", "t", "--run-dir", tmp_path / "run2", "--epochs", "1",
                        "--quiet", "--set", f"model.text_encoder={tiny_bert_dir}", "--set", "alignment.pairs=a-v")
    assert code == 2 and "alignment.pairs" in one_line(err)


# ---- 5. resume never duplicates or leaks -------------------------------------------------------
def test_kill_during_the_checkpoint_write_neither_duplicates_metrics_nor_leaks_files(small_synthetic, tiny_overrides, tmp_path, monkeypatch):
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=tiny_overrides(max_epochs=3, early_stop=9))
    straight = Trainer(config, tmp_path / "straight").fit()
    original = Trainer._save_resume_state

    def killed_while_writing(self, state):
        if state["epoch"] == 2:  # the metrics line of epoch 2 is written; the checkpoint is not
            (self.run_dir / ".last.pt.k1ll3d.partial").write_bytes(b"\0" * 4096)  # what SIGKILL leaves
            raise KeyboardInterrupt
        return original(self, state)

    monkeypatch.setattr(Trainer, "_save_resume_state", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "killed").fit()
    monkeypatch.setattr(Trainer, "_save_resume_state", original)
    resumed = Trainer(config, tmp_path / "killed").fit(resume=True)
    lines = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert resumed.metrics == straight.metrics
    assert not list((tmp_path / "killed").rglob("*.partial"))


def test_resume_of_a_directory_that_does_not_exist_is_refused(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    code, err = run_cli(capsys, *_train_args(small_synthetic, tiny_bert_dir, tmp_path / "nowhere", "--resume"))
    assert code == 2 and "nothing to resume" in one_line(err)
    assert not (tmp_path / "nowhere").exists()


def test_resume_of_a_finished_run_with_other_settings_is_refused(trained_run, small_synthetic, tiny_bert_dir, capsys):
    code, err = run_cli(capsys, *_train_args(small_synthetic, tiny_bert_dir, trained_run, "--model", "self_mm", "--epochs", "1",
                                             "--resume", "--set", "model.post_text_dim=8"))
    line = one_line(err)
    assert code == 2 and "model.post_text_dim" in line, line


def test_one_sample_validation_split_is_refused_before_training(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    from msakit.data.mmsa import write_mmsa_pickle
    from msakit.data.safe_pickle import safe_load

    data = safe_load(small_synthetic)
    data["valid"] = {k: v[:1] for k, v in data["valid"].items()}
    write_mmsa_pickle(tmp_path / "one.pkl", data)
    code, err = run_cli(capsys, *_train_args(tmp_path / "one.pkl", tiny_bert_dir, tmp_path / "run"))
    assert code == 2 and "'valid' split has 1 sample" in one_line(err)
    assert not (tmp_path / "run" / "seed_1" / "metrics.jsonl").exists()


# ---- 6. messages name the culprit ----------------------------------------------------------------
def test_non_utf8_table_names_the_file(tmp_path, capsys):
    (tmp_path / "train.csv").write_bytes("text,label\ncaf\xe9 tr\xe8s bien,1\n".encode("latin-1"))
    (tmp_path / "dev.csv").write_text("text,label\nfine,0\nok,1\n")
    code, err = run_cli(capsys, "train", "--data", tmp_path, "--modalities", "t", "--quiet")
    assert code == 2 and "train.csv" in one_line(err) and "UTF-8" in err


def test_model_json_missing_a_key_names_file_and_key(run_copy, small_synthetic, capsys):
    meta_path = run_copy / "seed_1" / "best" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["input_dims"]
    meta_path.write_text(json.dumps(meta))
    code, err = run_cli(capsys, "evaluate", run_copy, "--data", small_synthetic)
    line = one_line(err)
    assert code == 2 and "model.json" in line and "input_dims" in line


def test_damaged_weights_are_named_not_reported_as_bad_predictions(run_copy, small_synthetic, capsys):
    from safetensors.torch import load_file, save_file

    weights = run_copy / "seed_1" / "best" / "model.safetensors"
    state = load_file(str(weights))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(weights))
    code, err = run_cli(capsys, "evaluate", run_copy, "--data", small_synthetic)
    line = one_line(err)
    assert code == 2 and "model.safetensors" in line and key in line


def test_bad_seeds_leave_nothing_behind_and_the_next_try_works(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code, err = run_cli(capsys, *_train_args(small_synthetic, tiny_bert_dir, run)[:-4], "--seeds", "-5",
                        "--set", f"model.text_encoder={tiny_bert_dir}", "--epochs", "1")
    assert code == 2 and "seeds" in one_line(err) and not run.exists()
    assert main(_train_args(small_synthetic, tiny_bert_dir, run, "--epochs", "1")) == 0


def test_result_files_are_strict_json_and_share_one_mode(trained_run):
    from msakit.training.checkpoint import write_json

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))

    for path in trained_run.rglob("*.json"):
        strict(path.read_text())
    modes = {oct(p.stat().st_mode & 0o777) for p in trained_run.rglob("*") if p.is_file()}
    assert len(modes) == 1, modes
    write_json(trained_run / "x.json", {"MAE": float("nan"), "nested": [float("inf"), 1.0]})
    assert strict((trained_run / "x.json").read_text()) == {"MAE": None, "nested": [None, 1.0]}
    (trained_run / "x.json").unlink()


# ---- 7. metric edge: SIMS bins in the predictions' own precision ---------------------------------
def test_sims_bins_compare_float32_values_on_an_edge_like_the_reference():
    from msakit.metrics import regression_metrics

    preds = np.array([0.1, -0.7, 0.5, -0.1], dtype=np.float32)
    truth = np.array([0.05, -0.75, 0.5, -0.05], dtype=np.float32)

    def reference(values, edges):  # MMSA's loop on float32 numpy arrays
        out = np.zeros_like(values)
        for i in range(len(edges) - 1):
            out[np.logical_and(values > edges[i], values <= edges[i + 1])] = i
        return out

    ours = regression_metrics(preds, truth, "sims")
    for name, edges in (("Acc-3", [-1.01, -0.1, 0.1, 1.01]), ("Acc-5", [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01])):
        expected = float(np.mean(reference(preds, edges) == reference(truth, edges)))
        as_float64 = float(np.mean(reference(preds.astype(np.float64), edges) == reference(truth.astype(np.float64), edges)))
        assert ours[name] == expected
        assert as_float64 != expected  # the edge cases here do land elsewhere in float64


def test_every_user_error_class_is_a_msakit_error():
    from msakit import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), MsakitError)
