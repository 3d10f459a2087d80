"""The memory-mapped feature cache: a hit equals a fresh read, a changed source or a damaged
cache is never used, and concurrent first reads leave one good entry."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from msakit.data import feature_cache, load_dataset
from msakit.data.mmsa import read_mmsa_pickle, write_mmsa_pickle


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MSAKIT_CACHE", str(tmp_path / "cache"))


def _data(seed: int = 0, n=(40, 12, 16)) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, count in zip(("train", "valid", "test"), n):
        audio = rng.standard_normal((count, 20, 5)).astype(np.float32)
        audio[0, 0, 0] = np.nan  # repaired (and announced) by the reader
        out[name] = {
            "id": [f"{name}{i}" for i in range(count)],
            "raw_text": [f"clip {i} of {name}" for i in range(count)],
            "audio": audio,
            "audio_lengths": rng.integers(1, 21, size=count),
            "vision": rng.standard_normal((count, 15, 4)).astype(np.float64),
            "vision_lengths": rng.integers(0, 16, size=count),
            "regression_labels": rng.uniform(-3, 3, size=count).astype(np.float32),
            "regression_labels_A": rng.uniform(-3, 3, size=count).astype(np.float32),
        }
    return out


def _assert_same(a, b):
    assert sorted(a.splits) == sorted(b.splits) and a.aligned == b.aligned and a.nonfinite_replaced == b.nonfinite_replaced
    for name in a.splits:
        x, y = a[name], b[name]
        assert x.ids == y.ids and x.raw_text == y.raw_text and sorted(x.labels) == sorted(y.labels)
        for k in x.labels:
            assert x.labels[k].dtype == y.labels[k].dtype and np.array_equal(x.labels[k], y.labels[k])
        for f in ("audio", "audio_lengths", "vision", "vision_lengths"):
            u, v = getattr(x, f), getattr(y, f)
            assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), f"{name}.{f}"


def _entries() -> list[Path]:
    return [p for p in feature_cache.root().glob("*") if p.is_dir() and not p.name.startswith(".") and p.name != "fingerprints"]


def test_cache_hit_equals_fresh_read_and_is_memory_mapped(tmp_path):
    source = write_mmsa_pickle(tmp_path / "feat.pkl", _data())
    fresh = read_mmsa_pickle(source, kind="mosi")
    with pytest.warns(UserWarning, match="replaced"):
        first = load_dataset(source, "mosi")
    assert len(_entries()) == 1
    with pytest.warns(UserWarning, match="replaced"):  # the reader's repairs are announced on every read
        second = load_dataset(source, "mosi")
    _assert_same(fresh, first)
    _assert_same(fresh, second)
    assert isinstance(second["train"].audio, np.memmap) and not second["train"].audio.flags.writeable
    # A narrower request (no test split: a sweep's search) is its own entry and never holds test.
    search = load_dataset(source, "mosi", splits=("train", "valid"))
    assert sorted(search.splits) == ["train", "valid"]
    assert len(_entries()) == 2 and sum(1 for e in _entries() if list(e.glob("test.*"))) == 1
    _assert_same(read_mmsa_pickle(source, kind="mosi", splits=("train", "valid")), search)


def test_modified_source_invalidates_its_cache(tmp_path):
    source = write_mmsa_pickle(tmp_path / "feat.pkl", _data(seed=0))
    load_dataset(source, "mosi")
    write_mmsa_pickle(source, _data(seed=1))  # same shapes, new values
    again = load_dataset(source, "mosi")
    _assert_same(read_mmsa_pickle(source, kind="mosi"), again)
    (entry,) = _entries()  # the entry of the old contents is gone
    # Touched but unchanged: re-hashed, same entry reused.
    os.utime(source, ns=(1, 1))
    load_dataset(source, "mosi")
    assert _entries() == [entry]


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest"])
def test_damaged_cache_is_rebuilt_with_a_message(tmp_path, damage):
    source = write_mmsa_pickle(tmp_path / "feat.pkl", _data())
    load_dataset(source, "mosi")
    (entry,) = _entries()
    target = entry / "train.audio.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    elif damage == "delete":
        target.unlink()
    else:
        (entry / "manifest.json").write_text('{"format": "msakit-feature-c')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rebuilt = load_dataset(source, "mosi")
    assert any("damaged feature cache" in str(w.message) and "rebuilding" in str(w.message) for w in caught)
    _assert_same(read_mmsa_pickle(source, kind="mosi"), rebuilt)
    assert len(_entries()) == 1 and np.array_equal(np.load(entry / "train.audio.npy"), rebuilt["train"].audio)


def test_reader_errors_pass_through_and_nothing_is_cached(tmp_path):
    data = _data()
    del data["valid"]["regression_labels"]
    source = write_mmsa_pickle(tmp_path / "bad.pkl", data)
    with pytest.raises(ValueError, match="regression_labels"):
        load_dataset(source, "mosi")
    assert _entries() == []


pytestmark = pytest.mark.filterwarnings("ignore:.*(replaced|raised to 1).*:UserWarning")


def _worker(source: str, cache: str, queue) -> None:
    os.environ["MSAKIT_CACHE"] = cache
    data = load_dataset(source, "mosi")
    queue.put(float(np.asarray(data["train"].vision).sum()))


def test_concurrent_first_reads_leave_one_good_entry(tmp_path):
    source = write_mmsa_pickle(tmp_path / "feat.pkl", _data(n=(400, 50, 50)))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(str(source), os.environ["MSAKIT_CACHE"], queue)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    sums = [queue.get(timeout=5) for _ in workers]
    assert all(w.exitcode == 0 for w in workers) and len(set(sums)) == 1
    assert len(_entries()) == 1 and not list(feature_cache.root().glob(".*tmp-*"))
    _assert_same(read_mmsa_pickle(source, kind="mosi"), load_dataset(source, "mosi"))
