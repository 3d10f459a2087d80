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
CLIPS = ("grid/bbaf2n.mpg", "speech/librivox_0880.wav", "speech/librivox_0890.wav")

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


@pytest.fixture(scope="module")
def local_pickle(clips, tmp_path_factory) -> Path:
    import msakit

    output = tmp_path_factory.mktemp("local") / "f.pkl"
    result = msakit.extract(clips, output, workers=1, progress=False)
    assert len(result.extracted) == len(CLIPS) and not result.failures
    return output


def test_ray_extraction_writes_the_one_machine_pickle(ray_cluster, clips, local_pickle, tmp_path):
    import msakit

    distributed = msakit.extract(clips, tmp_path / "f.pkl", engine="ray", progress=False)
    assert len(distributed.extracted) == len(CLIPS) and not distributed.failures
    assert (tmp_path / "f.pkl").read_bytes() == local_pickle.read_bytes()


def _worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"ray::ClipWorker" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the Ray worker processes through /proc (Linux)")
def test_a_worker_killed_mid_run_loses_and_duplicates_no_clip(ray_cluster, clips, local_pickle, tmp_path):
    import os
    import signal

    import msakit

    killed, finished = [], []

    def kill_the_workers(clip_id, reason):  # at the first clip done, the others still running or queued
        finished.append(clip_id)
        if not killed:
            killed.extend(_worker_pids())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    result = msakit.extract(clips, tmp_path / "f.pkl", engine="ray", progress=False, on_clip=kill_the_workers)
    assert killed, "no Ray worker process was found to kill: the test proved nothing"
    assert sorted(finished) == sorted(result.extracted) and len(set(finished)) == len(CLIPS)  # each clip once
    assert not result.failures
    assert (tmp_path / "f.pkl").read_bytes() == local_pickle.read_bytes()


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
