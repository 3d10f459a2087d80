"""``msakit extract`` refuses bad input in one line, before any clip is extracted, and never
writes over its inputs or an existing output (issue 17, the extractor's part).

Each case asserts: exit code 2, one line on stderr naming the culprit, every file that was
there unchanged, and nothing new written (no pickle, no sidecar, no ``.parts`` folder: no
clip was extracted)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

for _module in ("av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

from msakit.cli import main  # noqa: E402
from msakit.extract.media import voice, write_clip  # noqa: E402

pytestmark = pytest.mark.bad_input


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=0.8, audio=voice(0.8))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(capsys, folder: Path, *argv, expect: str) -> str:
    """Run ``msakit extract *argv``; assert a one-line refusal containing ``expect`` that left
    ``folder`` exactly as it was."""
    before = _snapshot(folder)
    dirs_before = sorted(p for p in folder.rglob("*") if p.is_dir())
    capsys.readouterr()
    code = main(["extract", *[str(a) for a in argv], "--quiet"])
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expect in lines[0], lines[0]
    assert _snapshot(folder) == before  # nothing destroyed, nothing half-written
    assert sorted(p for p in folder.rglob("*") if p.is_dir()) == dirs_before  # no .parts: no clip was extracted
    return lines[0]


def _manifest(path: Path, header: list[str], rows: list[list[str]], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---- outputs ------------------------------------------------------------------------------------
def test_output_onto_the_source_clip_is_refused_even_with_overwrite(tmp_path, capsys, clip):
    work = tmp_path / "w"
    work.mkdir()
    target = work / "clip.mp4"
    target.write_bytes(clip.read_bytes())
    for extra in ([], ["--overwrite"]):
        line = _refused(capsys, work, target, "-o", target, *extra, expect="inputs")
        assert "clip.mp4" in line


def test_output_onto_the_manifest_or_a_listed_clip_is_refused(tmp_path, capsys, clip):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(clip.read_bytes())
    manifest = _manifest(tmp_path / "m.csv", ["path"], [["clips/a.mp4"]])
    _refused(capsys, tmp_path, manifest, "-o", manifest, "--overwrite", expect="m.csv: is one of this command's inputs")
    _refused(capsys, tmp_path, manifest, "-o", tmp_path / "clips" / "a.mp4", "--overwrite", expect="a.mp4: is one of this command's inputs")
    _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "clips" / "a.mp4", "--overwrite", expect="inputs")


def test_existing_pickle_or_sidecar_is_not_replaced_without_overwrite(tmp_path, capsys, clip):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "feats.pkl").write_bytes(b"precious")
    line = _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "feats.pkl", expect="--overwrite")
    assert "feats.pkl" in line
    (tmp_path / "feats.pkl").unlink()
    (tmp_path / "feats.extractor.json").write_text("{}")
    line = _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "feats.pkl", expect="--overwrite")
    assert "feats.extractor.json" in line


# ---- manifests ----------------------------------------------------------------------------------
def test_header_without_rows_says_no_rows(tmp_path, capsys):
    manifest = _manifest(tmp_path / "m.csv", ["path", "label"], [])
    _refused(capsys, tmp_path, manifest, "-o", tmp_path / "f.pkl", expect="no rows")


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e400"])
def test_non_finite_labels_refused_with_file_and_line(tmp_path, capsys, clip, value):
    (tmp_path / "a.mp4").write_bytes(clip.read_bytes())
    manifest = _manifest(tmp_path / "m.csv", ["path", "label"], [["a.mp4", "1.0"], ["a.mp4", value]])
    line = _refused(capsys, tmp_path, manifest, "-o", tmp_path / "f.pkl", expect="m.csv:3")
    assert value in line and "finite" in line


def test_labels_outside_the_kinds_range_refused(tmp_path, capsys, clip):
    (tmp_path / "a.mp4").write_bytes(clip.read_bytes())
    manifest = _manifest(tmp_path / "m.csv", ["path", "label", "id"], [["a.mp4", "0.5", "x"], ["a.mp4", "2.5", "y"]])
    line = _refused(capsys, tmp_path, manifest, "-o", tmp_path / "f.pkl", "--kind", "sims", expect="m.csv:3")
    assert "2.5" in line and "[-1, 1]" in line
    manifest = _manifest(tmp_path / "m.csv", ["path", "label", "id"], [["a.mp4", "0.5", "x"], ["a.mp4", "3.5", "y"]])
    _refused(capsys, tmp_path, manifest, "-o", tmp_path / "f.pkl", expect="m.csv:3")


def test_unknown_split_name_refused(tmp_path, capsys, clip):
    (tmp_path / "a.mp4").write_bytes(clip.read_bytes())
    manifest = _manifest(tmp_path / "m.csv", ["path", "split"], [["a.mp4", "training"]])
    line = _refused(capsys, tmp_path, manifest, "-o", tmp_path / "f.pkl", expect="m.csv:2")
    assert "'training'" in line


def test_a_folder_as_a_clip_path_is_one_clear_line(tmp_path, capsys):
    manifest = _manifest(tmp_path / "m.csv", ["path"], [["."]])
    _refused(capsys, tmp_path, manifest, "-o", tmp_path / "f.pkl", expect="m.csv:2: path '.' is a folder")


def test_header_whitespace_bom_and_case_are_accepted():
    from msakit.extract.sources import read_manifest

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        manifest = _manifest(Path(folder) / "m.csv", [" Path ", " LABEL", "Split "], [["a.mp4", " 1.5 ", "Train"]], bom=True)
        (clip,) = read_manifest(manifest).clips
    assert clip.path.name == "a.mp4" and clip.label == 1.5 and clip.split == "train"


# ---- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fractions", ["nan,0.5,0.5", "-0.1,0.6,0.5", "0.5,0.5,0.5", "1e400,0,0"])
def test_split_fractions_must_be_finite_non_negative_and_sum_to_one(tmp_path, capsys, clip, fractions):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(clip.read_bytes())
    _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "f.pkl", f"--split-fractions={fractions}", expect="--split-fractions")


def test_split_fractions_that_leave_a_split_empty_refused(tmp_path, capsys, clip):
    (tmp_path / "clips").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "clips" / name).write_bytes(clip.read_bytes())
    line = _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "f.pkl", "--split-fractions", "0.4,0.3,0.3", expect="--split-fractions")
    assert "2 video id(s)" in line and "empty" in line


def test_zero_workers_refused(tmp_path, capsys, clip):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(clip.read_bytes())
    _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "f.pkl", "--workers", "0", expect="--workers 0")


@pytest.mark.parametrize("setting, expect", [("video_fps=abc", "video_fps='abc': must be a number"), ("audio_hop=2.5", "whole number"),
                                             ("no_such=1", "no such extractor setting"), ("channel=middle", "channel")])
def test_bad_set_values_are_one_line(tmp_path, capsys, clip, setting, expect):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(clip.read_bytes())
    _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "f.pkl", "--set", setting, expect=expect)


def test_predict_video_given_a_folder_says_so(tmp_path):
    from msakit.errors import DataError
    from msakit.extract import list_clips

    with pytest.raises(DataError, match="is a folder"):
        list_clips([tmp_path])


# ---- the cache ----------------------------------------------------------------------------------
def test_clip_edited_in_place_with_size_and_time_kept_is_extracted_again(tmp_path):
    """The per-clip cache is keyed by content: new samples in a file of the same size and time
    stamp are not served stale features."""
    import msakit
    import soundfile

    path = tmp_path / "clips" / "a.wav"
    path.parent.mkdir()
    soundfile.write(path, voice(1.5, f0=120), 16000, subtype="PCM_16")
    stat = path.stat()
    import pickle

    from msakit.extract.audio import FEATURE_NAMES

    f0 = FEATURE_NAMES.index("f0_hz")

    def median_f0(result) -> float:
        track = pickle.loads(result.output.read_bytes())["test"]["audio"][0, :, f0]
        return float(np.median(track[track > 0]))

    before = median_f0(msakit.extract(path.parent, tmp_path / "f.pkl", progress=False, modalities="a"))
    soundfile.write(path, voice(1.5, f0=220), 16000, subtype="PCM_16")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    after = median_f0(msakit.extract(path.parent, tmp_path / "f.pkl", progress=False, modalities="a", overwrite=True))
    assert abs(before - 120) < 10 and abs(after - 220) < 15
    assert len(list((tmp_path / "f.pkl.parts").glob("*/*.npz"))) == 2
