"""Readers: safe unpickling, the MMSA pickle reader and the text-table reader.

These check what a user's file can do to us (run code, carry NaN, have the wrong shape) and
that every refusal names the place to fix.
"""

from __future__ import annotations

import builtins
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from msakit.data.mmsa import read_mmsa_pickle, write_mmsa_pickle
from msakit.data.safe_pickle import UnsafePickleError, safe_load
from msakit.data.text_table import read_text_dataset, read_text_table

MOSI_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mosi_text"


# ---------------------------------------------------------------------------- helpers


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _RunsEval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.eval, (self.code,))


def _split(rng: np.random.Generator, n: int, *, t_a: int = 7, t_v: int = 9, d_a: int = 3, d_v: int = 4, lengths: bool = True) -> dict:
    split = {
        "id": [f"vid{i}$_${i % 2}" for i in range(n)],
        "raw_text": [f"sentence number {i} " for i in range(n)],
        "audio": rng.standard_normal((n, t_a, d_a)).astype(np.float64),  # reader casts to float32
        "vision": rng.standard_normal((n, t_v, d_v)).astype(np.float32),
        "regression_labels": rng.uniform(-3, 3, size=(n, 1)).astype(np.float32),  # (N, 1) is flattened
    }
    if lengths:
        split["audio_lengths"] = rng.integers(1, t_a + 1, size=n).tolist()
        split["vision_lengths"] = rng.integers(1, t_v + 1, size=n).astype(np.int64)
    return split


def _dataset(*, lengths: bool = True, seed: int = 0, **kw) -> dict:
    rng = np.random.default_rng(seed)
    return {name: _split(rng, n, lengths=lengths, **kw) for name, n in (("train", 6), ("valid", 3), ("test", 4))}


def _write(tmp_path: Path, data: dict, name: str = "d.pkl") -> Path:
    return write_mmsa_pickle(tmp_path / name, data)


# ------------------------------------------------------------------- safe unpickling


@pytest.mark.bad_input
@pytest.mark.parametrize("payload, global_name", [(_RunsShell, f"{os.system.__module__}.system"), (_RunsEval, "builtins.eval")])
def test_pickle_that_runs_code_is_refused_before_running(tmp_path, payload, global_name):
    marker = tmp_path / "pwned"
    code = f"touch {marker}" if payload is _RunsShell else f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "evil.pkl"
    # Hide the payload inside an otherwise valid MMSA-looking dict.
    data = _dataset()
    data["train"]["annotations"] = payload(code)
    path.write_bytes(pickle.dumps(data, protocol=4))

    with pytest.raises(UnsafePickleError) as caught:
        safe_load(path)
    message = str(caught.value)
    assert global_name in message and str(path) in message and "run code" in message
    assert not marker.exists()
    with pytest.raises(UnsafePickleError):
        read_mmsa_pickle(path)
    assert not marker.exists()
    # Sanity: the payload really would have run with plain pickle (so the test can fail).
    pickle.loads(pickle.dumps(payload(code)))
    assert marker.exists()


@pytest.mark.bad_input
def test_object_arrays_of_str_become_lists_and_others_are_refused(tmp_path):
    path = tmp_path / "o.pkl"
    path.write_bytes(pickle.dumps({"id": np.array(["a", "b"], dtype=object)}, protocol=2))
    assert safe_load(path) == {"id": ["a", "b"]}
    path.write_bytes(pickle.dumps({"train": {"x": np.array([1, None], dtype=object)}}, protocol=4))
    with pytest.raises(ValueError, match=r"train/x"):
        safe_load(path)


@pytest.mark.bad_input
def test_missing_and_broken_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        safe_load(tmp_path / "nope.pkl")
    good = pickle.dumps(_dataset(), protocol=4)
    for name, content in (("trunc.pkl", good[: len(good) // 2]), ("garbage.pkl", b"\x00\x01not a pickle at all"), ("empty.pkl", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not a valid pickle") as caught:
            safe_load(tmp_path / name)
        assert name in str(caught.value) and not isinstance(caught.value, UnsafePickleError)


# ------------------------------------------------------------------------ MMSA pickle


def test_unaligned_round_trip(tmp_path):
    source = _dataset()
    data = read_mmsa_pickle(_write(tmp_path, source), kind="mosi")
    assert list(data.splits) == ["train", "valid", "test"] and not data.aligned
    assert data.modalities == ("t", "a", "v") and data.nonfinite_replaced == {}
    for name, split in data.splits.items():
        raw = source[name]
        n = len(raw["id"])
        assert len(split) == n and split.ids == raw["id"] and split.raw_text == raw["raw_text"]
        assert split.audio.dtype == np.float32 and split.audio.shape == (n, 7, 3)
        assert split.vision.dtype == np.float32 and split.vision.shape == (n, 9, 4)
        np.testing.assert_allclose(split.audio, raw["audio"].astype(np.float32))
        assert split.audio_lengths.dtype == np.int64 and split.audio_lengths.tolist() == raw["audio_lengths"]
        assert split.vision_lengths.tolist() == raw["vision_lengths"].tolist()
        assert split.labels["m"].dtype == np.float32 and split.labels["m"].shape == (n,)
        np.testing.assert_array_equal(split.labels["m"], raw["regression_labels"][:, 0])
        assert set(split.labels) == {"m"}


def test_aligned_lengths_come_from_the_text_mask(tmp_path):
    source = _dataset(lengths=False, t_a=5, t_v=5)
    mask_counts = {"train": [3, 5, 9, 0, 2, 4], "valid": [1, 2, 3], "test": [5, 5, 1, 2]}
    for name, counts in mask_counts.items():
        text_bert = np.zeros((len(counts), 3, 10), dtype=np.float32)
        for i, c in enumerate(counts):
            text_bert[i, 1, :c] = 1
        source[name]["text_bert"] = text_bert
    del source["test"]["text_bert"]  # no mask at all -> full T
    data = read_mmsa_pickle(_write(tmp_path, source))
    assert data.aligned
    assert data["train"].audio_lengths.tolist() == [3, 5, 5, 1, 2, 4]  # clamped to [1, T]
    assert data["valid"].vision_lengths.tolist() == [1, 2, 3]
    assert data["test"].audio_lengths.tolist() == [5, 5, 5, 5]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickle_protocols_load(tmp_path, protocol):
    # numpy reconstructs arrays through different globals per protocol (_reconstruct +
    # _codecs.encode for 2, _reconstruct for 4, _frombuffer for 5).
    source = _dataset()
    source["train"]["id"] = np.array(source["train"]["id"], dtype=object)
    source["valid"]["extra_scalar"] = np.float32(1.5)
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(source, protocol=protocol))
    data = read_mmsa_pickle(path, modalities=("a", "v"))
    assert data["train"].ids == list(source["train"]["id"])
    assert data["test"].audio.shape == (4, 7, 3) and data["test"].audio.dtype == np.float32
    np.testing.assert_array_equal(data["valid"].vision, source["valid"]["vision"])
    assert data["train"].raw_text is None and data.modalities == ("a", "v")
    # The arrays can be repaired in place (not read-only views of the pickle's buffer).
    data["test"].audio[0, 0, 0] = 1.0


def test_numpy1_style_pickle_loads(tmp_path):
    # numpy 1 wrote "numpy.core.multiarray"; numpy 2 writes "numpy._core.multiarray". Protocol 2
    # spells globals as text, so the old spelling can be produced by substitution.
    source = _dataset()
    blob = pickle.dumps(source, protocol=2)
    old = blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert old != blob and b"numpy._core" not in old
    (tmp_path / "old.pkl").write_bytes(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DeprecationWarning from numpy's numpy.core shim
        data = read_mmsa_pickle(tmp_path / "old.pkl")
    np.testing.assert_array_equal(data["train"].vision, source["train"]["vision"])


def test_nonfinite_features_are_zeroed_with_one_warning(tmp_path):
    source = _dataset()
    source["train"]["audio"][0, 0, :] = np.nan  # 3 values
    source["train"]["audio"][1, 2, 0] = np.inf
    source["test"]["vision"][2, 1, 1] = -np.inf
    with pytest.warns(UserWarning) as record:
        data = read_mmsa_pickle(_write(tmp_path, source))
    messages = [str(w.message) for w in record if "NaN/inf" in str(w.message)]
    assert len(messages) == 1
    assert "replaced 5 NaN/inf" in messages[0] and "train/audio: 4" in messages[0] and "test/vision: 1" in messages[0]
    assert data.nonfinite_replaced == {("train", "audio"): 4, ("test", "vision"): 1}
    assert np.all(data["train"].audio[0, 0] == 0) and data["train"].audio[1, 2, 0] == 0
    assert data["test"].vision[2, 1, 1] == 0
    assert all(np.isfinite(s.audio).all() and np.isfinite(s.vision).all() for s in data.splits.values())


def test_zero_lengths_are_raised_to_one_with_a_warning(tmp_path):
    source = _dataset()
    source["valid"]["audio_lengths"] = [0, 0, 7]
    with pytest.warns(UserWarning, match=r"2 sequence length"):
        data = read_mmsa_pickle(_write(tmp_path, source))
    assert data["valid"].audio_lengths.tolist() == [1, 1, 7]


def _expect_error(tmp_path: Path, source: dict, *fragments: str, **kwargs) -> str:
    path = _write(tmp_path, source)
    with pytest.raises(ValueError) as caught:
        read_mmsa_pickle(path, **kwargs)
    message = str(caught.value)
    for fragment in (str(path), *fragments):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


@pytest.mark.bad_input
def test_wrong_shapes_are_refused(tmp_path):
    source = _dataset()
    source["valid"]["audio"] = source["valid"]["audio"][:, :, 0]
    _expect_error(tmp_path, source, "'valid'", "'audio'", "(N, T, D)", "N=3", "(3, 7)")

    source = _dataset()
    source["test"]["vision"] = source["test"]["vision"][:3]
    _expect_error(tmp_path, source, "'test'", "'vision'", "N=4", "(3, 9, 4)")

    source = _dataset()
    source["test"]["vision"] = np.zeros((4, 9, 5), dtype=np.float32)
    _expect_error(tmp_path, source, "'vision'", "D differs", "test: D=5")

    source = _dataset()
    source["train"]["audio_lengths"] = [8] * 6
    _expect_error(tmp_path, source, "'train'", "'audio_lengths'", "T=7")


@pytest.mark.bad_input
def test_missing_keys_and_splits_are_named(tmp_path):
    source = _dataset()
    del source["train"]["vision"]
    _expect_error(tmp_path, source, "'train'", "'vision'", "modality 'v'", modalities=("t", "v"))
    # Without asking for v, a file lacking vision in one split is still an error (None = all
    # the file has), but asking for what every split has works.
    assert read_mmsa_pickle(tmp_path / "d.pkl", modalities=("t", "a")).modalities == ("t", "a")

    source = _dataset()
    del source["valid"]
    message = _expect_error(tmp_path, source, "'valid'", "Keys found")
    assert "'test'" in message and "'train'" in message

    source = _dataset()
    del source["test"]["regression_labels"]
    _expect_error(tmp_path, source, "'test'", "'regression_labels'")


@pytest.mark.bad_input
def test_bad_labels_are_refused(tmp_path):
    source = _dataset()
    source["valid"]["regression_labels"][1, 0] = 3.5
    _expect_error(tmp_path, source, "'valid'", "'regression_labels'", "index 1", "3.5", "[-3, 3]", 'kind="sims"')

    source = _dataset()
    source["valid"]["regression_labels"][:] = 0.5
    _expect_error(tmp_path, source, "'train'", "[-1, 1]", kind="sims")

    source = _dataset()
    source["test"]["regression_labels"][2, 0] = np.nan
    _expect_error(tmp_path, source, "'test'", "NaN", "index 2")

    with pytest.raises(ValueError, match="unknown dataset kind"):
        read_mmsa_pickle(_write(tmp_path, _dataset()), kind="imdb")


def test_sims_unimodal_labels_are_read(tmp_path):
    source = _dataset()
    rng = np.random.default_rng(1)
    for split in source.values():
        n = len(split["id"])
        split["regression_labels"] = rng.uniform(-1, 1, size=n).astype(np.float32)
        for suffix in "TAV":
            split[f"regression_labels_{suffix}"] = rng.uniform(-1, 1, size=n).astype(np.float32)
    data = read_mmsa_pickle(_write(tmp_path, source), kind="sims")
    for name, split in data.splits.items():
        assert set(split.labels) == {"m", "t", "a", "v"}
        np.testing.assert_array_equal(split.labels["a"], source[name]["regression_labels_A"])

    source["test"]["regression_labels_V"][0] = -1.2
    _expect_error(tmp_path, source, "'test'", "'regression_labels_V'", kind="sims")


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = _write(tmp_path, _dataset())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.pkl"]
    with pytest.raises(TypeError):
        write_mmsa_pickle(tmp_path / "x.pkl", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(Exception):
        write_mmsa_pickle(path, {"train": lambda: 0})  # unpicklable: old file must survive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.pkl"]
    assert len(read_mmsa_pickle(path)["train"]) == 6


# ------------------------------------------------------------------------- text tables


def test_text_tables_tsv_and_csv(tmp_path):
    (tmp_path / "train.tsv").write_text('text\tLabel\tother\nit was "great"\t2.5\tx\nmeh \t-0.4\ty\n\n', encoding="utf-8")
    (tmp_path / "dev.csv").write_text('Label,Text\n1,"good, really"\n-3,""\n', encoding="utf-8")
    with pytest.warns(UserWarning, match="empty text"):
        data = read_text_dataset(tmp_path, kind="mosi")
    assert list(data.splits) == ["train", "valid"] and data.modalities == ("t",)
    train, valid = data["train"], data["valid"]
    assert train.raw_text == ['it was "great"', "meh "] and train.ids == ["train_0", "train_1"]
    assert train.labels["m"].dtype == np.float32 and train.labels["m"].tolist() == pytest.approx([2.5, -0.4])
    assert valid.raw_text == ["good, really", ""] and valid.labels["m"].tolist() == [1.0, -3.0]
    assert valid.name == "valid" and train.audio is None

    (tmp_path / "test.tsv").write_text("text\tlabel\nfine\t0\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="empty text"):
        assert list(read_text_dataset(tmp_path).splits) == ["train", "valid", "test"]


@pytest.mark.bad_input
def test_text_table_errors(tmp_path):
    bad = tmp_path / "train.tsv"
    bad.write_text("text\tlabel\ngood\t1.0\nbad\tpositive\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.tsv, line 3: label 'positive'"):
        read_text_table(bad, split_name="train")

    bad.write_text("text\tlabel\ngood\t1.0\nbad\t1.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 3: 1\.5.*\[-1, 1\]|\[-1, 1\].*line 3: 1\.5"):
        read_text_table(bad, split_name="train", kind="sims")

    bad.write_text("sentence\tscore\nx\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"columns found: \['sentence', 'score'\]"):
        read_text_table(bad, split_name="train")

    bad.write_text("text\tlabel\nx\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="directory"):
        read_text_dataset(bad)
    with pytest.raises(ValueError, match=r"valid split.*train\.tsv"):
        read_text_dataset(tmp_path)


def test_real_mosi_text_reads():
    if not MOSI_TEXT.is_dir():
        pytest.skip(f"real MOSI text data not present at {MOSI_TEXT}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real data needs no repairs
        data = read_text_dataset(MOSI_TEXT, kind="mosi")
    assert len(data["train"]) == 1284 and len(data["valid"]) == 229 and "test" not in data.splits
    labels = np.concatenate([s.labels["m"] for s in data.splits.values()])
    assert np.all(np.abs(labels) <= 3) and labels.std() > 0.5
    assert all(isinstance(t, str) and t.strip() for t in data["train"].raw_text)


@pytest.mark.bad_input
def test_a_text_table_row_with_more_fields_than_its_header_is_refused(tmp_path):
    """'label,text' with '2.0,good, really' used to keep 'good' and drop the rest silently."""
    from msakit.data.text_table import read_text_table
    from msakit.errors import DataError

    table = tmp_path / "train.csv"
    table.write_text("label,text\n1.0,fine\n2.0,good, really\n")
    with pytest.raises(DataError, match=r"line 3: 3 fields, but the header has 2; quote a field that holds a comma, e.g. \"good, really\""):
        read_text_table(table, split_name="train")
    table.write_text('label,text\n1.0,fine\n2.0,"good, really"\n')
    assert read_text_table(table, split_name="train").raw_text == ["fine", "good, really"]
