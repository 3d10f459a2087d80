"""The standard raw layouts (label.csv beside Raw/<video_id>/<clip_id>.mp4: MOSI and SIMS),
audio-only input in every common container, channel selection, and mixed manifests."""

from __future__ import annotations

import csv
import json
import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

for _module in ("av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

import msakit  # noqa: E402
from msakit.extract.asr import word_error_rate  # noqa: E402
from msakit.extract.media import voice, write_clip  # noqa: E402

SR = 16000


def _write_label_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _raw_release(root: Path, sims: bool) -> tuple[list[dict], Path, Path]:
    """A raw release: 5 videos x 2 clips (the last row listed but not on disk) + one unlisted file."""
    rng = np.random.default_rng(1 if sims else 0)
    rows, modes = [], ["train", "train", "valid", "test", "test"]
    bound = 1.0 if sims else 3.0
    for v in range(5):
        for c in range(2):
            label = round(float(rng.uniform(-bound, bound)), 1 if sims else 4)
            row = {"video_id": f"vid{v}", "clip_id": f"{c + 1:04d}", "text": f"clip {c} of video {v} is {'good' if label > 0 else 'bad'}",
                   "label": label}
            if sims:
                row.update({f"label_{m}": round(float(rng.uniform(-1, 1)), 1) for m in "TAV"})
            row.update({"annotation": "Positive" if label > 0 else "Negative", "mode": modes[v]})
            rows.append(row)
    if not sims:
        rows[0]["label"] = 2.6  # beyond [-1, 1]: the MOSI scale
    _write_label_csv(root / "label.csv", rows)
    for i, row in enumerate(rows[:-1]):
        write_clip(root / "Raw" / row["video_id"] / f"{row['clip_id']}.mp4", seconds=1.0, audio=voice(1.0, f0=110 + 15 * i, seed=i))
    missing = root / "Raw" / rows[-1]["video_id"] / f"{rows[-1]['clip_id']}.mp4"
    unlisted = write_clip(root / "Raw" / "vid9" / "0001.mp4", seconds=1.0, audio=voice(1.0))
    return rows, missing, unlisted


@pytest.mark.parametrize("sims", [False, True], ids=["mosi", "sims"])
def test_raw_release_layout_extracts_labels_splits_and_reports_missing(tmp_path, tiny_overrides, sims):
    root = tmp_path / ("SIMS" if sims else "MOSI")
    rows, missing, unlisted = _raw_release(root, sims)
    result = msakit.extract(root, tmp_path / "feats.pkl", workers=1, progress=False)
    assert not result.failures
    assert result.kind == ("sims" if sims else "mosi")
    assert [m["path"] for m in result.missing] == [str(missing)] and result.unlisted == [str(unlisted)]
    assert str(missing) in result.report() and str(unlisted) in result.report()
    data = pickle.loads((tmp_path / "feats.pkl").read_bytes())
    present = rows[:-1]
    for split in ("train", "valid", "test"):
        expected = [r for r in present if r["mode"] == split]
        got = data[split]
        assert got["id"] == [f"{r['video_id']}$_${r['clip_id']}" for r in expected]
        assert got["raw_text"] == [r["text"] for r in expected]
        np.testing.assert_array_equal(got["regression_labels"], np.array([r["label"] for r in expected], np.float32))
        assert got["annotations"] == [r["annotation"] for r in expected]
        if sims:
            for m in "TAV":
                np.testing.assert_array_equal(got[f"regression_labels_{m}"], np.array([r[f"label_{m}"] for r in expected], np.float32))
        else:
            assert "regression_labels_T" not in got
    sidecar = json.loads((tmp_path / "feats.extractor.json").read_text())
    assert sidecar["dataset"]["layout"] == "mmsa" and sidecar["dataset"]["kind"] == result.kind
    assert sidecar["clips"]["missing_on_disk"][0]["path"] == str(missing)
    per_clip = sidecar["clips"]["per_clip"]["vid0$_$0001"]
    assert per_clip["duration_s"] > 0.9 and per_clip["face_frames"] > 0 and 0 <= per_clip["voiced_fraction"] <= 1
    assert per_clip["transcript_source"] == "given"
    # Training on it uses the official splits (and SIMS's unimodal labels load as t/a/v labels).
    from msakit.data import load_dataset

    loaded = load_dataset(tmp_path / "feats.pkl", result.kind, ("t", "a", "v"))
    assert {name: len(split) for name, split in loaded.splits.items()} == {"train": 4, "valid": 2, "test": 3}
    if sims:
        assert set(loaded["train"].labels) == {"m", "t", "a", "v"}
    summary = msakit.train("self_mm", tmp_path / "feats.pkl", kind=result.kind, run_dir=tmp_path / "run", overrides=tiny_overrides(max_epochs=1))
    assert "MAE" in summary.summary
    # SIMS's unimodal labels are reported beside ULGM's generated ones (MOSI has none: nothing).
    if sims:
        comparison = summary.ulgm_labels[1111]
        assert comparison["split"] == "train" and sorted(comparison["modalities"]) == ["a", "t", "v"]
        assert all(row["n"] == 4 and 0 <= row["generated"]["sign_agreement"] <= 1 for row in comparison["modalities"].values())
        assert "ULGM's generated unimodal labels" in summary.table()
    else:
        assert summary.ulgm_labels == {} and "ULGM" not in summary.table()


def test_layout_flag_forces_the_raw_release_and_refuses_a_plain_folder(tmp_path):
    from msakit.errors import MissingFileError

    write_clip(tmp_path / "clips" / "a.mp4", seconds=1.0, audio=voice(1.0))
    with pytest.raises(MissingFileError, match="label.csv"):
        msakit.extract(tmp_path / "clips", tmp_path / "x.pkl", layout="mmsa", progress=False)
    assert not (tmp_path / "x.pkl").exists() and not (tmp_path / "x.pkl.parts").exists()


# ---- audio files --------------------------------------------------------------------------------
def _speech() -> tuple[np.ndarray, np.ndarray]:
    """Two different sentences shipped with moonshine-voice (16 kHz mono)."""
    from moonshine_voice.utils import get_assets_path

    from msakit.extract.decode import iter_audio

    beckett = np.concatenate(list(iter_audio(get_assets_path() / "beckett.wav")))
    cities = np.concatenate(list(iter_audio(get_assets_path() / "two_cities.wav")))
    return beckett, cities


BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def _write_audio(path: Path, channels: np.ndarray, codec: str, rate: int = SR) -> Path:
    """``channels`` (C, n) float32 written with PyAV's ``codec`` (the container from the suffix)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    layout = "mono" if channels.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        formats = [f.name for f in stream.codec_context.codec.audio_formats or []]
        fmt = next((f for f in ("fltp", "flt", "s16p", "s16", "s32p", "s32") if f in formats), "fltp")
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, channels.shape[1], frame_size):
            block = channels[:, start : start + frame_size].astype(np.float32)
            if block.shape[1] < frame_size and codec not in ("pcm_s16le", "flac"):
                block = np.pad(block, ((0, 0), (0, frame_size - block.shape[1])))
            if fmt.startswith("s16"):
                block = (np.clip(block, -1, 1) * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                block = (np.clip(block, -1, 1) * 2147483647).astype(np.int32)
            array = block if fmt.endswith("p") else block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=fmt, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


AUDIO_FORMATS = [("speech.wav", "pcm_s16le"), ("speech.flac", "flac"), ("speech.mp3", "libmp3lame"), ("speech.m4a", "aac"),
                 ("speech.ogg", "libopus")]


def test_folder_of_audio_files_gives_text_and_audio(tmp_path):
    import av

    beckett, _ = _speech()
    written = []
    for name, codec in AUDIO_FORMATS:
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # an encoder this PyAV build lacks (decoding is what is tested)
            continue
        if codec == "libopus":  # Opus runs at 48 kHz
            signal = np.interp(np.arange(3 * beckett.size) / 3, np.arange(beckett.size), beckett).astype(np.float32)
            written.append(_write_audio(tmp_path / "audio" / name, signal[None], codec, rate=48000))
        else:
            written.append(_write_audio(tmp_path / "audio" / name, beckett[None], codec))
    assert {p.suffix for p in written} >= {".wav", ".flac", ".m4a", ".mp3", ".ogg"}
    result = msakit.extract(tmp_path / "audio", tmp_path / "feats.pkl", workers=1, progress=False)
    assert not result.failures, result.failures
    assert sum("vision is absent" in note for note in result.notes) == 1  # said once, not per clip
    data = pickle.loads((tmp_path / "feats.pkl").read_bytes())["test"]
    assert "vision" not in data and data["audio"].shape[0] == len(written)
    assert len(set(data["id"])) == len(written)  # same stem, other suffix: still distinct ids
    for text in data["raw_text"]:
        assert word_error_rate([BECKETT], [text]) <= 0.35, text
    sidecar = json.loads((tmp_path / "feats.extractor.json").read_text())
    assert "v" not in sidecar["settings"]["modalities"] and "vision" not in sidecar["features"]


def test_a_single_wav_is_a_clip_not_a_manifest(tmp_path):
    beckett, _ = _speech()
    path = _write_audio(tmp_path / "one.wav", beckett[None], "pcm_s16le")
    result = msakit.extract(path, tmp_path / "one.pkl", progress=False, modalities="ta")
    assert result.extracted == ["one"] and not result.failures


def test_channel_left_and_right_recognise_their_own_sentence(tmp_path):
    beckett, cities = _speech()
    n = max(beckett.size, cities.size)
    stereo = np.stack([np.pad(beckett, (0, n - beckett.size)), np.pad(cities, (0, n - cities.size))])
    path = _write_audio(tmp_path / "stereo.wav", stereo, "pcm_s16le")
    from msakit.extract import ExtractSettings, extract_clip

    texts = {channel: extract_clip(path, ExtractSettings(modalities="t", channel=channel))["text"] for channel in ("left", "right")}
    reference_right = extract_clip(_write_audio(tmp_path / "cities.wav", cities[None], "pcm_s16le"), ExtractSettings(modalities="t"))["text"]
    assert word_error_rate([BECKETT], [texts["left"]]) <= 0.35, texts
    assert word_error_rate([reference_right], [texts["right"]]) <= 0.2, texts
    assert word_error_rate([BECKETT], [texts["right"]]) > 0.8  # the other channel's sentence is not in it
    # The channel is part of the settings (and so of the cache key and the sidecar).
    assert ExtractSettings(channel="left").key() != ExtractSettings(channel="right").key()


def test_manifest_mixing_audio_and_video_files(tmp_path):
    beckett, _ = _speech()
    _write_audio(tmp_path / "media" / "talk.flac", beckett[None], "flac")
    write_clip(tmp_path / "media" / "face.mp4", seconds=1.5, audio=voice(1.5))
    _write_label_csv(tmp_path / "manifest.csv", [{"path": "media/talk.flac", "text": ""}, {"path": "media/face.mp4", "text": "a face"}])
    result = msakit.extract(tmp_path / "manifest.csv", tmp_path / "feats.pkl", workers=1, progress=False)
    assert not result.failures and result.extracted == ["media$_$talk", "media$_$face"]
    data = pickle.loads((tmp_path / "feats.pkl").read_bytes())["test"]
    assert data["raw_text"][1] == "a face" and word_error_rate([BECKETT], [data["raw_text"][0]]) <= 0.35
    assert data["vision_lengths"].tolist()[0] == 1 and not data["vision"][0].any()  # no video track: vision absent (present = 0)
    assert data["vision"][1, :, 0].sum() > 0  # the face was found in the video
    assert any("without a video track" in note for note in result.notes)
    sidecar = json.loads((tmp_path / "feats.extractor.json").read_text())
    assert sidecar["clips"]["per_clip"]["media$_$talk"]["vision"].startswith("absent")
