"""``--engine ray``: extraction and batch scoring on a local Ray cluster (2 CPUs) give the same
files as one machine, byte for byte. Needs the optional extras ``msakit[distributed]`` (ray)
and ``msakit[video]``, and the real recordings (shared/data/media beside the checkout)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             Path("shared/data/media"))
CLIPS = ("grid/bbaf2n.mpg", "speech/librivox_0880.wav")

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'msakit[distributed]')"),
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("av", "mediapipe")),
                       reason="the video extra is not installed (pip install 'msakit[video]')"),
    pytest.mark.skipif(not all((MEDIA / c).is_file() for c in CLIPS), reason="shared/data/media (real recordings) not present"),
]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for name in CLIPS:
        shutil.copyfile(MEDIA / name, folder / Path(name).name)
    return folder


def test_ray_extraction_writes_the_one_machine_pickle(ray_cluster, clips, tmp_path):
    import msakit

    local = msakit.extract(clips, tmp_path / "local" / "f.pkl", workers=1, progress=False)
    distributed = msakit.extract(clips, tmp_path / "ray" / "f.pkl", engine="ray", progress=False)
    assert len(local.extracted) == len(CLIPS) and local.extracted == distributed.extracted and not distributed.failures
    assert (tmp_path / "ray" / "f.pkl").read_bytes() == (tmp_path / "local" / "f.pkl").read_bytes()


def test_ray_batch_scoring_writes_the_one_machine_csv(ray_cluster, clips, text_only_run, tmp_path):
    from msakit.workflows.predict_video import predict_video

    videos = sorted(clips.iterdir())
    local = predict_video(text_only_run, videos, tmp_path / "local.csv", progress=False, device="cpu")
    distributed = predict_video(text_only_run, videos, tmp_path / "ray.csv", progress=False, device="cpu", engine="ray", workers=None)
    assert len(local["predictions"]) == len(videos) and not local["failures"]
    assert Path(distributed["csv"]).read_bytes() == Path(local["csv"]).read_bytes()


def test_engine_ray_with_a_missing_ray_says_how_to_install(monkeypatch, clips, tmp_path):
    import builtins

    import msakit
    from msakit.errors import ConfigError

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'msakit\[distributed\]'"):
        msakit.extract(clips, tmp_path / "f.pkl", engine="ray", progress=False)
    assert not (tmp_path / "f.pkl").exists()
