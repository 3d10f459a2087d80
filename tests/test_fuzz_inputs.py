"""Property-based: mutated feature files and mutated settings either load cleanly or fail with
a ``MsakitError`` carrying a message, never any other exception type."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msakit.config import SECTIONS, resolve_config
from msakit.data.mmsa import read_mmsa_pickle
from msakit.errors import MsakitError

pytestmark = [pytest.mark.bad_input, pytest.mark.filterwarnings("ignore:.*replaced .* NaN/inf values:UserWarning")]

KEYS = ["id", "raw_text", "audio", "vision", "audio_lengths", "vision_lengths", "regression_labels",
        "regression_labels_T", "text_bert", "annotations", "classification_labels"]


def base_split(n: int, rng: np.random.Generator) -> dict:
    return {
        "id": np.array([f"clip_{i}" for i in range(n)], dtype=object),
        "raw_text": np.array([f"words number {i}" for i in range(n)], dtype=object),
        "audio": rng.normal(size=(n, 6, 3)).astype(np.float32),
        "audio_lengths": np.full(n, 6, dtype=np.int64),
        "vision": rng.normal(size=(n, 5, 4)).astype(np.float32),
        "vision_lengths": np.full(n, 5, dtype=np.int64),
        "regression_labels": rng.uniform(-3, 3, size=n).astype(np.float32),
    }


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3), st.floats()), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(
        lambda shape, dtype, fill: np.full(shape, fill).astype(dtype),
        st.lists(st.integers(0, 7), min_size=0, max_size=4).map(tuple),
        st.sampled_from(["float32", "float64", "int64", "int8", "bool", "complex64", "object", "U3"]),
        st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True, width=32)),
    ),
)

mutation = st.tuples(
    st.sampled_from(["train", "valid", "test", "extra"]),
    st.sampled_from(KEYS + ["other"]),
    st.sampled_from(["set", "delete", "truncate", "transpose", "nan"]),
    values,
)


def mutate(data: dict, split: str, key: str, how: str, value) -> None:
    target = data.get(split)
    if not isinstance(target, dict):
        data[split] = value
        return
    if how == "delete":
        target.pop(key, None)
    elif how == "set":
        target[key] = value
    elif how == "truncate" and isinstance(target.get(key), np.ndarray) and target[key].ndim:
        target[key] = target[key][: max(0, len(target[key]) - 1)]
    elif how == "transpose" and isinstance(target.get(key), np.ndarray):
        target[key] = target[key].T
    elif how == "nan" and isinstance(target.get(key), np.ndarray) and target[key].dtype.kind == "f" and target[key].size:
        target[key] = target[key].copy()
        target[key].flat[0] = np.nan


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(mutation, min_size=1, max_size=3), top=st.sampled_from(["dict", "list", "none"]),
       kind=st.sampled_from(["mosi", "sims"]), modalities=st.sampled_from([None, "t", "a,v", "t,a,v"]))
def test_mutated_feature_files_load_or_fail_with_a_msakit_error(tmp_path, mutations, top, kind, modalities):
    rng = np.random.default_rng(0)
    data = {name: base_split(4, rng) for name in ("train", "valid", "test")}
    for split, key, how, value in mutations:
        mutate(data, split, key, how, value)
    payload = data if top == "dict" else (list(data.values()) if top == "list" else None)
    path = tmp_path / "mutated.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    try:
        read_mmsa_pickle(path, kind=kind, modalities=modalities)
    except MsakitError as error:
        assert str(error).strip()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=4))
def test_damaged_pickle_bytes_load_or_fail_with_a_msakit_error(tmp_path, cut, flips):
    rng = np.random.default_rng(1)
    raw = bytearray(pickle.dumps({name: base_split(3, rng) for name in ("train", "valid", "test")}, protocol=4))
    for position, byte in flips:
        raw[position % len(raw)] = byte
    path = tmp_path / "damaged.pkl"
    path.write_bytes(bytes(raw[: max(1, len(raw) - cut)]))
    try:
        read_mmsa_pickle(path)
    except MsakitError as error:
        assert str(error).strip()


setting_names = st.sampled_from([
    "batch_size", "max_epochs", "early_stop", "grad_accumulation", "seed", "device", "num_threads", "progress",
    "post_text_dim", "post_fusion_dropout", "lr_text", "weight_decay_other", "ulgm", "ulgm_bound", "text_encoder",
    "pairs", "weight", "align_dim", "modalities", "max_text_tokens", "kind", "path", "no_such_key",
])
setting_values = st.one_of(st.integers(-3, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                           st.text(max_size=10), st.sampled_from(["a-v", "t-a:2", "all", "none", "a-v:x", "t,a", "1e-3", "inf", "-0"]))


@settings(max_examples=200, deadline=None)
@given(overrides=st.dictionaries(st.sampled_from([*SECTIONS, "trian"]), st.dictionaries(setting_names, setting_values, max_size=3), max_size=3),
       model=st.sampled_from(["dma", "self_mm", "mmmie", "late_fusion", "nope"]), kind=st.sampled_from(["mosi", "sims", "imdb"]))
def test_mutated_settings_resolve_or_fail_with_a_msakit_error(overrides, model, kind):
    try:
        config = resolve_config(model, kind=kind, overrides=overrides)
    except MsakitError as error:
        assert str(error).strip()
    else:
        config.validate()  # what resolved is valid by every declared range
