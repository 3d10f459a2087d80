"""``msakit compare --engine ray``: each model and seed a task on a Ray cluster; the table is the
one the local engine makes from the same runs. Needs the optional extra ``msakit[distributed]``."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'msakit[distributed]')")


def test_compare_on_ray_gives_the_local_table(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    import ray

    from msakit.workflows.compare import compare

    overrides = {"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"max_epochs": 1, "progress": False, "num_threads": 1}}
    models, seeds = ["late_fusion", "ef_lstm"], [1111, 1112]  # ef_lstm needs aligned data: refused on both engines
    local = compare(models, small_synthetic, output_dir=tmp_path / "local", seeds=seeds, overrides=overrides)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    try:
        spread = compare(models, small_synthetic, output_dir=tmp_path / "ray", seeds=seeds, overrides=overrides, engine="ray")
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert "[compare] 4 run(s) on Ray" in out and "ef_lstm seed 1112: refused:" in out
    for seed in seeds:  # each run trained by a task on the cluster, the same bits as in this process
        for name in ("test_predictions.csv",):
            assert (tmp_path / "ray" / "runs" / "late_fusion" / f"seed_{seed}" / name).read_text() == \
                (tmp_path / "local" / "runs" / "late_fusion" / f"seed_{seed}" / name).read_text()
    assert spread["rows"]["late_fusion"]["per_seed"] == local["rows"]["late_fusion"]["per_seed"]
    assert spread["rows"]["ef_lstm"]["status"] == local["rows"]["ef_lstm"]["status"] == "refused"
    assert json.loads((tmp_path / "ray" / "compare.json").read_text())["complete"]
