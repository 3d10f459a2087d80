"""benchmarks/combine_compare.py joins compare results only when they are on the same data and budget:
two paths to files with the same bytes are the same data; another file, or another budget, is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import combine_compare  # noqa: E402

METRICS = ("Acc-2 (has-0)", "F1 (has-0)", "Acc-2 (non-0)", "F1 (non-0)", "Acc-5", "Acc-7", "MAE", "Corr")


def _source(tmp_path: Path, name: str, data: Path, model: str, mae: float, epochs: int = 8) -> Path:
    per_seed = {s: {m: (mae + i / 100 if m == "MAE" else 0.9) for m in METRICS} for i, s in enumerate(("1111", "1112"))}
    timing = {s: {"seconds_per_epoch": 1.0, "samples_per_s": 10.0, "epochs_run": epochs, "best_epoch": epochs} for s in per_seed}
    payload = {
        "command": f"msakit compare --models {model}", "data": str(data), "kind": "mosi", "seeds": [1111, 1112],
        "modalities": ["t", "a", "v"], "evaluated_split": "test",
        "overrides": {"train": {"max_epochs": epochs, "num_threads": "1"}}, "model_overrides": {}, "model_data": {},
        "complete": True,
        "rows": {model: {"model": model, "status": "ok", "modalities": "tav", "per_seed": per_seed, "summary": {},
                         "timing": {}, "per_seed_timing": timing, "parameters": 10, "parameters_without_text_encoder": 5}},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(payload))
    return path


def test_same_bytes_under_another_path_are_combined(tmp_path):
    first, copy, other = tmp_path / "a.pkl", tmp_path / "copy.pkl", tmp_path / "other.pkl"
    first.write_bytes(b"the same samples")
    copy.write_bytes(b"the same samples")
    other.write_bytes(b"other samples")
    combined = combine_compare.combine([_source(tmp_path, "s1", first, "tfn", 0.3), _source(tmp_path, "s2", copy, "lmf", 0.5)])
    assert set(combined["rows"]) == {"tfn", "lmf"}
    assert combined["rows"]["lmf"]["summary"]["MAE"]["mean"] == pytest.approx(0.505)
    assert list(combined["same_data"].values())[0]["data"] == str(copy)
    assert "the same bytes as" in combine_compare.markdown(combined, "python benchmarks/combine_compare.py ...")

    with pytest.raises(combine_compare.CombineError, match="differ in data"):
        combine_compare.combine([_source(tmp_path, "s1", first, "tfn", 0.3), _source(tmp_path, "s3", other, "lmf", 0.5)])
    gone = tmp_path / "gone.pkl"  # a file no longer on this machine cannot be shown to be the same
    with pytest.raises(combine_compare.CombineError, match="differ in data"):
        combine_compare.combine([_source(tmp_path, "s1", first, "tfn", 0.3), _source(tmp_path, "s4", gone, "lmf", 0.5)])
    with pytest.raises(combine_compare.CombineError, match="epochs"):
        combine_compare.combine([_source(tmp_path, "s1", first, "tfn", 0.3), _source(tmp_path, "s5", copy, "lmf", 0.5, epochs=4)])
