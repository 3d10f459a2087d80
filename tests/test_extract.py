"""Video -> features -> sentiment score, on generated media (and the real clips in
shared/data/media where present). Needs the optional extra ``msakit[video]``."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

for _module in ("av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

from msakit.errors import DataError  # noqa: E402
from msakit.extract import ExtractSettings, extract, extract_clip  # noqa: E402
from msakit.extract.asr import word_error_rate  # noqa: E402
from msakit.extract.audio import FEATURE_NAMES as AUDIO_NAMES  # noqa: E402
from msakit.extract.audio import AudioFeaturizer  # noqa: E402
from msakit.extract.face import FEATURE_NAMES as FACE_NAMES  # noqa: E402
from msakit.extract.media import voice, write_clip  # noqa: E402
from msakit.extract.pipeline import Clip, _assign_splits  # noqa: E402

# The real recordings: shared/data/media beside the checkout (or beside its worktree folder).
MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             Path("shared/data/media"))
REPO = Path(__file__).resolve().parents[1]
AV = ExtractSettings(modalities="av")


def _face_index(name: str) -> int:
    return FACE_NAMES.index(name)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """Good clips and every kind of bad one, some in a folder with spaces and non-ASCII."""
    root = tmp_path_factory.mktemp("clips")
    write_clip(root / "good_a.mp4", seconds=1.6, audio=voice(1.6, f0=120), scale=lambda t: 0.7 + 0.1 * t)
    write_clip(root / "Ordner mit Leerzeichen é" / "ünïcode clip.mp4", seconds=1.2, audio=voice(1.2, f0=180))
    write_clip(root / "no_audio.mp4", seconds=1.0)
    write_clip(root / "no_face.mp4", seconds=1.0, face=False, audio=voice(1.0))
    write_clip(root / "short.mp4", seconds=0.3, audio=voice(0.3))
    data = (root / "good_a.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    return root


def test_audio_features_do_not_depend_on_chunking():
    signal_ = voice(2.0, f0=200.0, seed=1)
    whole = AudioFeaturizer()
    whole.push(signal_)
    expected = whole.finish()
    pieces = AudioFeaturizer()
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, signal_.size), 7, replace=False))
    for part in np.split(signal_, cuts):
        pieces.push(part)
    got = pieces.finish()
    assert got.shape == expected.shape == (int(2.0 * 25), len(AUDIO_NAMES))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    f0 = expected[:, AUDIO_NAMES.index("f0_hz")]
    voiced = f0 > 0
    assert voiced.mean() > 0.8
    assert abs(np.median(f0[voiced]) - 200.0) < 5.0  # the planted pitch


def test_face_found_and_landmark_features_follow_planted_motion(tmp_path):
    # The face grows from 0.5 to 0.9 of the frame height and moves from left to right.
    scale, centre_x = (lambda t: 0.5 + 0.1 * t), (lambda t: 0.35 + 0.075 * t)
    path = write_clip(tmp_path / "moving.mp4", seconds=4.0, size=(400, 300), scale=scale, centre=lambda t: (centre_x(t), 0.5))
    features = extract_clip(path, ExtractSettings(modalities="v"))["vision"]
    t = np.arange(len(features)) / 10.0
    assert len(features) == 40
    present = features[:, _face_index("present")]
    assert present.mean() >= 0.95
    ok = present > 0
    assert np.corrcoef(features[ok, _face_index("face_scale")], scale(t[ok]))[0, 1] > 0.98
    assert np.corrcoef(features[ok, _face_index("face_x")], centre_x(t[ok]))[0, 1] > 0.98
    # Normalised geometry does not move with the face: landmark coordinates stay put.
    landmarks = features[ok, len(FACE_NAMES) - 72 :]
    assert np.abs(landmarks - landmarks.mean(axis=0)).max() < 0.15


def test_landmarks_read_from_bytes_equal_field_by_field(tmp_path):
    """The face mesh's 468 landmarks are read from the serialised message in one step: the
    same values as reading each landmark's fields, and any other layout falls back to that."""
    from msakit.extract.decode import iter_frames
    from msakit.extract.face import FaceFeaturizer, landmark_points

    write_clip(tmp_path / "face.mp4", seconds=0.6)
    face = FaceFeaturizer()
    try:
        frame = next(frame for _, frame in iter_frames(tmp_path / "face.mp4", 10.0))
        landmarks = face.mesh.process(frame).multi_face_landmarks[0]
    finally:
        face.close()
    height, width = frame.shape[:2]

    def slow():
        return np.array([(p.x * width, p.y * height, p.z * width) for p in landmarks.landmark], np.float64)

    assert landmark_points(landmarks, width, height).tobytes() == slow().tobytes()
    landmarks.landmark[5].visibility = 0.5  # another layout of the message
    assert landmark_points(landmarks, width, height).tobytes() == slow().tobytes()


def test_bad_clips_each_get_one_line_reason_and_the_others_are_extracted(clip_dir, tmp_path):
    result = extract(clip_dir, tmp_path / "feats.pkl", settings=AV, progress=False)
    reasons = {Path(f["path"]).name: f["reason"] for f in result.failures}
    assert set(reasons) == {"no_audio.mp4", "no_face.mp4", "short.mp4", "truncated.mp4"}
    assert "no audio track" in reasons["no_audio.mp4"]
    assert "no face" in reasons["no_face.mp4"]
    assert "too short" in reasons["short.mp4"]
    assert "corrupt" in reasons["truncated.mp4"]
    assert all("\n" not in r and len(r) < 200 for r in reasons.values())
    assert sorted(result.extracted) == ["Ordner mit Leerzeichen é$_$ünïcode clip", "good_a"]
    data = pickle.loads((tmp_path / "feats.pkl").read_bytes())
    assert data["test"]["audio"].shape[2] == len(AUDIO_NAMES) and data["test"]["vision"].shape[2] == len(FACE_NAMES)
    sidecar = json.loads((tmp_path / "feats.extractor.json").read_text())
    assert sidecar["features"]["audio"]["rate_hz"] == 25.0 and sidecar["features"]["vision"]["dim"] == len(FACE_NAMES)
    assert len(sidecar["clips"]["failed"]) == 4 and sidecar["versions"]["mediapipe"] == "0.10.14"
    # msakit reads the file unchanged.
    from msakit.data import load_dataset

    split = load_dataset(tmp_path / "feats.pkl", "mosi", ("a", "v"), splits=("test",), require_labels=False)["test"]
    assert len(split) == 2 and split.vision_lengths.tolist() == [12, 16]


def test_speech_recognised_in_shipped_recording():
    from moonshine_voice.utils import get_assets_path

    from msakit.extract.asr import Recogniser
    from msakit.extract.decode import iter_audio

    recogniser = Recogniser()
    for chunk in iter_audio(get_assets_path() / "beckett.wav"):
        recogniser.push(chunk)
    text = recogniser.finish()
    reference = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
    assert word_error_rate([reference], [text]) <= 0.35, text


@pytest.mark.skipif(not MEDIA.is_dir(), reason="shared/data/media (real recordings) not present")
def test_real_media_speech_recognised_and_face_found():
    from msakit.extract.asr import Recogniser
    from msakit.extract.decode import iter_audio

    rows = dict(line.split("\t", 1) for line in (MEDIA / "transcripts.tsv").read_text().strip().splitlines()[1:])
    refs, hyps = [], []
    for name in ("speech/jfk.flac", "speech/librivox_0880.wav", "grid/pwij3p.mpg"):
        recogniser = Recogniser()
        for chunk in iter_audio(MEDIA / name):
            recogniser.push(chunk)
        refs.append(rows[name])
        hyps.append(recogniser.finish())
    assert word_error_rate(refs, hyps) <= 0.3, hyps
    vision = extract_clip(MEDIA / "grid" / "bbaf2n.mpg", ExtractSettings(modalities="v"))["vision"]
    assert vision[:, _face_index("present")].mean() >= 0.95


def test_split_fractions_keep_each_video_in_one_split():
    clips = [Clip(Path(f"v{g}_{i}.mp4"), f"v{g}$_${i}", group=f"v{g}") for g in range(12) for i in range(3)]
    splits = _assign_splits(clips, (0.7, 0.15, 0.15), seed=1)
    by_group: dict[str, set] = {}
    for clip, split in zip(clips, splits):
        by_group.setdefault(clip.group, set()).add(split)
    assert all(len(s) == 1 for s in by_group.values())
    counts = {s: splits.count(s) for s in ("train", "valid", "test")}
    assert counts["train"] >= 21 and counts["valid"] >= 3 and counts["test"] >= 3


def test_killed_extraction_resumes_without_redoing_finished_clips(tmp_path):
    folder = tmp_path / "clips"
    for i in range(5):
        write_clip(folder / f"c{i}.mp4", seconds=1.5, audio=voice(1.5, f0=110 + 20 * i), scale=lambda t, i=i: 0.6 + 0.05 * i)
    output = tmp_path / "out.pkl"
    command = [sys.executable, "-m", "msakit.cli", "extract", str(folder), "-o", str(output), "--workers", "1", "--modalities", "a,v", "--quiet"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "out.pkl.parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("*/*.npz"))) < 2 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = {p: p.stat().st_mtime_ns for p in parts.glob("*/*.npz")}
    assert 2 <= len(done) < 5 and not output.exists()
    result = extract(folder, output, settings=AV, progress=False)
    assert len(result.extracted) == 5 and not result.failures
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in done.items())  # finished clips were not redone
    fresh = extract(folder, tmp_path / "fresh.pkl", settings=AV, progress=False)
    resumed, uninterrupted = (pickle.loads(r.output.read_bytes())["test"] for r in (result, fresh))
    for key in ("id", "audio_lengths", "vision_lengths"):
        assert list(resumed[key]) == list(uninterrupted[key])
    np.testing.assert_allclose(resumed["audio"], uninterrupted["audio"], atol=1e-5)
    np.testing.assert_allclose(resumed["vision"], uninterrupted["vision"], atol=1e-5)


def test_extract_train_predict_video_end_to_end(tmp_path, tiny_overrides, capsys):
    import msakit
    from msakit.cli import main

    words = {1.5: "this movie is great and wonderful", -1.5: "this movie is terrible and boring"}
    rows = []
    for i in range(8):
        label = 1.5 if i % 2 else -1.5
        name = f"clip{i}.mp4"
        write_clip(tmp_path / "clips" / name, seconds=1.0, audio=voice(1.0, f0=200 if label > 0 else 110, seed=i),
                   scale=lambda t, label=label: 0.8 if label > 0 else 0.55)
        split = "train" if i < 4 else "valid" if i < 6 else "test"
        rows.append({"path": f"clips/{name}", "label": label, "split": split, "text": words[label], "video_id": f"v{i}"})
    with open(tmp_path / "manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["extract", str(tmp_path / "manifest.csv"), "-o", str(tmp_path / "feats.pkl"), "--workers", "1", "--quiet"]) == 0
    summary = msakit.train("self_mm", tmp_path / "feats.pkl", run_dir=tmp_path / "run", overrides=tiny_overrides(max_epochs=1))
    assert (summary.run_dir / "seed_1111" / "best" / "extractor.json").is_file()
    assert "MAE" in msakit.evaluate(summary.run_dir, tmp_path / "feats.pkl")["summary"]  # same extractor: accepted
    videos = [str(tmp_path / "clips" / "clip1.mp4"), str(tmp_path / "clips" / "clip2.mp4"), str(tmp_path / "missing_audio.mp4")]
    write_clip(videos[-1], seconds=1.0)
    capsys.readouterr()
    # exit 1: the results are written, but one clip could not be scored (a video without sound, on a run that hears)
    assert main(["predict", str(tmp_path / "run"), "--video", *videos, "--output", str(tmp_path / "pred.csv")]) == 1
    shown = capsys.readouterr().out
    assert "clip1.mp4" in shown and "no audio track" in shown
    result = json.loads((tmp_path / "pred.json").read_text())
    assert [Path(r["video"]).name for r in result["predictions"]] == ["clip1.mp4", "clip2.mp4"]
    for row in result["predictions"]:
        assert row["class"] in ("negative", "neutral", "positive") and {"unimodal", "transcript", "used", "warnings"} <= set(row)
        assert set(row["unimodal"]) == {"text", "audio", "vision"} and row["used"] == ["text", "audio", "vision"]
    with open(tmp_path / "pred.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert len(table) == 3 and table[2]["error"].startswith("no audio track") and table[2]["error_code"] == "no_audio_track"
    # Features this msakit would extract differently from the run's are refused, naming what differs.
    sidecar = summary.run_dir / "seed_1111" / "best" / "extractor.json"
    original = json.loads(sidecar.read_text())
    for change, expected in (({"extractor_version": 0}, "extractor version"), ({"features": {**original["features"], "audio": {
            **original["features"]["audio"], "dim": 20}}}, "audio feature dim")):
        sidecar.write_text(json.dumps({**original, **change}))
        with pytest.raises(DataError, match=expected):
            msakit.predict_video(summary.run_dir, videos[:1], tmp_path / "again.csv")
        with pytest.raises(DataError, match=expected):  # features extracted by another extractor
            msakit.evaluate(summary.run_dir, tmp_path / "feats.pkl")


def test_extract_refuses_a_missing_source_in_one_line(tmp_path, capsys):
    from msakit.cli import main

    assert main(["extract", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.pkl")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and "\n" not in err
    assert os.listdir(tmp_path) == []
