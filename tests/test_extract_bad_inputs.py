"""``msakit extract`` refuses bad input in one line, before any clip is extracted, and never
writes over its inputs or an existing output (issue 17, the extractor's part).

Each case asserts: exit code 2, one line on stderr naming the culprit, every file that was
there unchanged, and nothing new written (no pickle, no sidecar, no ``.parts`` folder: no
clip was extracted)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

for _module in ("av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

from msakit.cli import main  # noqa: E402
from msakit.errors import DataError  # noqa: E402
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


# ---- modalities the inputs cannot give (refused before any clip is extracted) --------------------
MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             None)


def _sound_file(path: Path, seconds: float = 1.0) -> Path:
    """An audio-only file: WAV (PCM) for ``.wav``, AAC in an MP4 container for ``.mp4`` (a video
    file's name, no video track)."""
    import av
    from fractions import Fraction

    path.parent.mkdir(parents=True, exist_ok=True)
    samples = voice(seconds)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le" if path.suffix == ".wav" else "aac", rate=16000)
        stream.layout = "mono"
        fmt = "s16" if path.suffix == ".wav" else "fltp"
        for start in range(0, samples.size, 1024):
            block = samples[start : start + 1024]
            if fmt == "s16":
                block = (block * 32767).astype(np.int16)
            elif block.size < 1024:
                block = np.pad(block, (0, 1024 - block.size))
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format=fmt, layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("modalities", ["v", "tav", "t,a,v", "av"])
def test_vision_asked_of_an_audio_file_is_refused_in_one_line(tmp_path, capsys, modalities):
    """``--modalities v`` on a wav extracted text and audio and exited 0; now: refused, naming
    what was asked, what the input has and what to ask instead, and nothing is written."""
    wav = _sound_file(tmp_path / "in" / "talk.wav")
    line = _refused(capsys, tmp_path, wav, "-o", tmp_path / "out" / "f.pkl", "--modalities", modalities,
                    expect=f"--modalities {modalities.replace(',', '')}: all 1 input(s) are audio files without a video track")
    assert "no clip can give vision (v); ask only for what they have (--modalities ta), or give video files" in line
    assert not (tmp_path / "out").exists()


def test_vision_asked_of_video_files_without_a_video_track_is_refused(tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    _sound_file(tmp_path / "clips" / "a.mp4")
    _sound_file(tmp_path / "clips" / "b.wav")
    line = _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "f.pkl", "--modalities", "v",
                    expect="--modalities v: none of the 2 input(s) has a video track, so no clip can give vision (v)")
    assert "(--modalities ta)" in line and not (tmp_path / "f.pkl").exists()


def test_sound_asked_of_silent_videos_is_refused_even_by_default(tmp_path, capsys):
    write_clip(tmp_path / "clips" / "silent.mp4", seconds=0.6)
    _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "f.pkl", "--modalities", "a",
             expect="--modalities a: none of the 1 input(s) has an audio track, so no clip can give audio (a); "
                    "ask only for what they have (--modalities v), or give clips with sound")
    # the default (all of t, a, v): no audio and no transcript, so neither text nor audio
    _refused(capsys, tmp_path, tmp_path / "clips", "-o", tmp_path / "f.pkl",
             expect="--modalities tav (the default): none of the 1 input(s) has an audio track (nor a transcript in a manifest "
                    "'text' column), so no clip can give text (t) or audio (a); ask only for what they have (--modalities v)")
    assert not (tmp_path / "f.pkl").exists()


def test_a_transcript_is_enough_for_text(tmp_path):
    """Text needs an audio track only where no transcript is given."""
    from msakit.extract.pipeline import ExtractSettings, check_modalities
    from msakit.extract.sources import gather

    write_clip(tmp_path / "silent.mp4", seconds=0.6)
    manifest = _manifest(tmp_path / "m.csv", ["path", "text"], [["silent.mp4", "a transcript"]])
    settings, note = check_modalities(gather(manifest).clips, ExtractSettings(modalities="tv"))
    assert settings.modalities == "tv" and note == ""


def test_mixed_inputs_vision_only_writes_vision_only_and_reports_the_audio_file(tmp_path, capsys, clip):
    """Some inputs have a video track, some do not: those without are per-clip failures, and the
    pickle holds exactly the modality asked (no text, no audio)."""
    import pickle

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "face.mp4").write_bytes(clip.read_bytes())
    _sound_file(tmp_path / "clips" / "talk.wav")
    assert main(["extract", str(tmp_path / "clips"), "-o", str(tmp_path / "f.pkl"), "--modalities", "v", "--quiet", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 clip(s) extracted" in out and "talk.wav: no video track (only vision was asked for)" in out
    split = pickle.loads((tmp_path / "f.pkl").read_bytes())["test"]
    assert split["id"] == ["face"] and sorted(split) == ["id", "vision", "vision_lengths"] and split["vision"][0, :, 0].sum() > 0
    sidecar = json.loads((tmp_path / "f.extractor.json").read_text())
    assert sidecar["settings"]["modalities"] == "v" and list(sidecar["features"]) == ["vision"]


@pytest.mark.skipif(MEDIA is None, reason="the real recordings (shared/data/media beside the checkout) are absent")
def test_real_recordings_vision_of_speech_refused_and_mixed_with_grid_extracted(tmp_path, capsys):
    speech = MEDIA / "speech" / "librivox_0880.wav"
    _refused(capsys, tmp_path, speech, "-o", tmp_path / "f.pkl", "--modalities", "v",
             expect="--modalities v: all 1 input(s) are audio files without a video track")
    assert not (tmp_path / "f.pkl").exists()
    import pickle

    import msakit

    result = msakit.extract([MEDIA / "grid" / "bbaf2n.mpg", speech], tmp_path / "g.pkl", progress=False, modalities="v")
    assert result.extracted == ["bbaf2n"] and [f["reason"] for f in result.failures] == ["no video track (only vision was asked for)"]
    split = pickle.loads((tmp_path / "g.pkl").read_bytes())["test"]
    assert sorted(split) == ["id", "vision", "vision_lengths"] and split["vision"][0, :, 0].mean() > 0.9  # the speaker's face


# ---- CH-SIMS unimodal labels: [-1, 1] like the multimodal label ----------------------------------
def _release(root: Path, clip: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A raw release: label.csv with ``rows`` and each row's clip on disk."""
    _manifest(root / "label.csv", header, rows)
    for row in rows:
        (root / "Raw" / row[0]).mkdir(parents=True, exist_ok=True)
        (root / "Raw" / row[0] / f"{row[1]}.mp4").write_bytes(clip.read_bytes())
    return root


SIMS_HEADER = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]


@pytest.mark.parametrize("column", ["label_T", "label_A", "label_V"])
def test_sims_unimodal_label_outside_minus_one_one_refused(tmp_path, capsys, clip, column):
    values = {"label_T": "0.2", "label_A": "-0.4", "label_V": "0.6"}
    bad = dict(values, **{column: "3.0"})
    root = _release(tmp_path / "SIMS", clip, SIMS_HEADER, [["v1", "0001", "好", "0.4", *values.values(), "Positive", "train"],
                                                           ["v1", "0002", "坏", "-0.2", *bad.values(), "Negative", "test"]])
    line = _refused(capsys, tmp_path, root, "-o", tmp_path / "f.pkl",
                    expect=f"label.csv:3: {column} 3 is outside [-1, 1], the range of sims (rows with unimodal labels label_T/A/V are CH-SIMS)")
    assert line.endswith("; correct it, or pass --kind mosi if these labels are on the [-3, 3] scale")
    line = _refused(capsys, tmp_path, root, "-o", tmp_path / "f.pkl", "--kind", "sims", expect=f"label.csv:3: {column} 3 is outside [-1, 1]")
    assert "--kind mosi" in line
    (root / "Raw" / "v1" / "0002.mp4").unlink()  # the row is wrong even where its clip is missing on disk
    _refused(capsys, tmp_path, root, "-o", tmp_path / "f.pkl", expect=f"label.csv:3: {column} 3 is outside [-1, 1]")


def test_sims_multimodal_label_beside_unimodal_ones_is_checked_at_minus_one_one(tmp_path, capsys, clip):
    root = _release(tmp_path / "SIMS", clip, SIMS_HEADER, [["v1", "0001", "好", "2.5", "0.2", "0.2", "0.2", "Positive", "train"]])
    _refused(capsys, tmp_path, root, "-o", tmp_path / "f.pkl", expect="label.csv:2: label 2.5 is outside [-1, 1], the range of sims")


def test_unimodal_labels_in_range_and_an_explicit_kind_are_accepted(tmp_path, clip):
    from msakit.extract.sources import gather

    root = _release(tmp_path / "SIMS", clip, SIMS_HEADER, [["v1", "0001", "好", "-1", "1.0", "-1.0", "0", "Negative", "train"]])
    listing = gather(root)
    assert listing.kind == "sims" and listing.clips[0].unimodal == {"T": 1.0, "A": -1.0, "V": 0.0}
    manifest = _manifest(tmp_path / "m.csv", ["path", "label", "label_t", "label_a", "label_v"],
                         [["SIMS/Raw/v1/0001.mp4", "2.0", "2.5", "0", "0"]])
    assert gather(manifest, kind="mosi").kind == "mosi"  # the user's own scale, said with --kind
    with pytest.raises(DataError, match=r"m.csv:2: label 2 is outside \[-1, 1\]"):
        gather(manifest)


# ---- CSV syntax errors: at the line where they start, saying what is wrong -----------------------
LABEL_HEADER = "video_id,clip_id,text,label,annotation,mode\n"
GOOD_ROW = "v1,0001,fine,0.5,Positive,train\n"
CSV_ERRORS = {
    "unclosed quote to the end": (b'v1,0002,"it never closes,0.5,Positive,train\nv1,0003,x,0.1,Positive,train\n'
                                  b'v1,0004,y,0.2,Positive,train\nv1,0005,z,0.3,Positive,train\n',
                                  ':3: unclosed quote (a field opened with " never closes)'),
    "unclosed quote closed by a later row": (b'v1,0002,"it never closes,0.5,Positive,train\nv1,0003,"quoted",0.1,Positive,train\n',
                                             ':3: unclosed quote (a field opened with " on this line runs on to line 4)'),
    "unclosed quote that swallows a row": (b'v1,0002,"it never closes,0.5,Positive,train\nv1,0003,x",0.1,Positive,train\n',
                                           ':3: unclosed quote (a field opened with " on this line runs on to line 4)'),
    "text after a closing quote": (b'v1,0002,"quoted" then more,0.5,Positive,train\n', ":3: text after the closing quote"),
    "too few fields": (b"v1,0002,0.5,train\n", ":3: 4 field(s) but the header has 6 (video_id, clip_id, text, label, annotation, mode); "
                                              "give every column"),
    "too many fields": (b"v1,0002,hello, world,0.5,Positive,train\n", ":3: 7 field(s) but the header has 6"),
    "NUL byte": (b"v1,0002,he\0llo,0.5,Positive,train\n", ":3: a NUL byte"),
    "Latin-1 byte": (b"v1,0002,caf\xe9,0.5,Positive,train\n", ":3: byte 0xe9 is not UTF-8"),
}


@pytest.mark.parametrize("case", list(CSV_ERRORS))
def test_label_csv_syntax_errors_are_reported_where_they_start(tmp_path, capsys, clip, case):
    """An unclosed quote on line 3 was reported as 'label.csv:<last line>: empty label'."""
    tail, expect = CSV_ERRORS[case]
    root = tmp_path / "MOSI"
    (root / "Raw" / "v1").mkdir(parents=True)
    (root / "Raw" / "v1" / "0001.mp4").write_bytes(clip.read_bytes())
    (root / "label.csv").write_bytes((LABEL_HEADER + GOOD_ROW).encode() + tail)
    line = _refused(capsys, tmp_path, root, "-o", tmp_path / "f.pkl", expect=f"label.csv{expect}")
    assert "empty label" not in line and not (tmp_path / "f.pkl").exists()


def test_label_csv_in_utf16_is_refused_as_such(tmp_path, capsys, clip):
    root = tmp_path / "MOSI"
    (root / "Raw" / "v1").mkdir(parents=True)
    (root / "Raw" / "v1" / "0001.mp4").write_bytes(clip.read_bytes())
    (root / "label.csv").write_bytes((LABEL_HEADER + GOOD_ROW).encode("utf-16"))
    _refused(capsys, tmp_path, root, "-o", tmp_path / "f.pkl", expect="label.csv: encoded as UTF-16; save it as UTF-8")


def test_quoted_commas_and_quotes_are_read_and_lines_counted_in_crlf_files(tmp_path, clip):
    from msakit.extract.sources import gather

    root = tmp_path / "MOSI"
    (root / "Raw" / "v1").mkdir(parents=True)
    (root / "Raw" / "v1" / "0001.mp4").write_bytes(clip.read_bytes())
    (root / "label.csv").write_bytes((LABEL_HEADER + 'v1,0001,"well, he said ""fine""",0.5,Positive,train\n\n'
                                      "v1,0002,x,0.5,Positive,training\n").replace("\n", "\r\n").encode("utf-8-sig"))
    with pytest.raises(DataError, match=r"label.csv:4: split 'training'"):  # the blank line 3 counted
        gather(root)
    (root / "label.csv").write_bytes((LABEL_HEADER + 'v1,0001,"well, he said ""fine""",0.5,Positive,train\r\n').encode())
    (only,) = gather(root).clips
    assert only.text == 'well, he said "fine"' and only.label == 0.5


@pytest.mark.parametrize("case", ["unclosed quote to the end", "too few fields", "NUL byte", "Latin-1 byte"])
def test_manifest_syntax_errors_are_reported_where_they_start(tmp_path, capsys, clip, case):
    (tmp_path / "a.mp4").write_bytes(clip.read_bytes())
    tail, expect = CSV_ERRORS[case]
    tail = tail.replace(b"v1,0002,", b"a.mp4,v1,").replace(b"v1,0003,", b"a.mp4,v1,")  # rows of a manifest: path, video_id, text, ...
    (tmp_path / "m.csv").write_bytes(b"path,video_id,text,label,annotation,split\na.mp4,v1,fine,0.5,Positive,train\n" + tail)
    line = _refused(capsys, tmp_path, tmp_path / "m.csv", "-o", tmp_path / "f.pkl", expect=f"m.csv{expect.split(' (video_id')[0]}")
    assert not (tmp_path / "f.pkl").exists(), line


# ---- a raw release without Raw/ ------------------------------------------------------------------
@pytest.mark.parametrize("given", ["folder", "label.csv", "--layout mmsa"])
def test_label_csv_without_raw_names_the_expected_layout(tmp_path, capsys, given):
    root = tmp_path / "MOSI"
    root.mkdir()
    (root / "label.csv").write_text(LABEL_HEADER + GOOD_ROW)
    source = root / "label.csv" if given == "label.csv" else root
    extra = ["--layout", "mmsa"] if given == "--layout mmsa" else []
    line = _refused(capsys, tmp_path, source, "-o", tmp_path / "f.pkl", *extra,
                    expect=f"{root}: has label.csv but no Raw/ folder (looked for {root / 'Raw'}); a raw dataset release keeps each clip "
                           "listed in label.csv as Raw/<video_id>/<clip_id>.<ext>")
    assert "no media files" not in line and not (tmp_path / "f.pkl").exists()


def test_raw_with_clips_in_the_wrong_place_says_where_they_belong(tmp_path, capsys, clip):
    root = tmp_path / "MOSI"
    (root / "Raw").mkdir(parents=True)
    (root / "Raw" / "0001.mp4").write_bytes(clip.read_bytes())  # not in Raw/<video_id>/
    (root / "label.csv").write_text(LABEL_HEADER + GOOD_ROW)
    _refused(capsys, tmp_path, root, "-o", tmp_path / "f.pkl",
             expect=f"none of its 1 clips is on disk under {root / 'Raw'} (first: {root / 'Raw' / 'v1' / '0001.mp4'}); 1 media file(s) "
                    "under Raw/ are elsewhere (e.g. Raw/0001.mp4); a raw release keeps each clip as Raw/<video_id>/<clip_id>.<ext>")


# ---- --quiet: the missing and unlisted clips in one line ------------------------------------------
def test_quiet_counts_missing_and_unlisted_clips_in_one_line(tmp_path, capsys, clip):
    root = tmp_path / "MOSI"
    (root / "Raw" / "v1").mkdir(parents=True)
    (root / "Raw" / "v1" / "0001.mp4").write_bytes(clip.read_bytes())
    for name in ("0009.mp4", "0010.mp4"):  # on disk, in no row
        (root / "Raw" / "v1" / name).write_bytes(clip.read_bytes())
    (root / "label.csv").write_text(LABEL_HEADER + GOOD_ROW + "v1,0002,gone,0.5,Positive,train\nv2,0001,gone,0.5,Positive,test\n"
                                    "v2,0002,gone,0.5,Positive,test\n")
    argv = ["extract", str(root), "--modalities", "a", "--workers", "1"]
    assert main([*argv, "-o", str(tmp_path / "q.pkl"), "--quiet"]) == 0
    quiet = capsys.readouterr().out
    summary = [line for line in quiet.splitlines() if "media file" in line]
    assert summary == [f"  3 listed clip(s) have no media file, 2 media file(s) are not listed; their paths are in "
                       f"{tmp_path / 'q.extractor.json'} (clips.missing_on_disk, clips.unlisted_on_disk), or run without --quiet"]
    assert "0002.mp4" not in quiet and "0009.mp4" not in quiet
    sidecar = json.loads((tmp_path / "q.extractor.json").read_text())
    assert len(sidecar["clips"]["missing_on_disk"]) == 3 and len(sidecar["clips"]["unlisted_on_disk"]) == 2
    assert main([*argv, "-o", str(tmp_path / "full.pkl")]) == 0
    full = capsys.readouterr().out
    assert "3 clip(s) listed in label.csv but missing on disk" in full and "2 media file(s) under Raw/ listed in no row" in full
    for path in (root / "Raw" / "v1" / "0002.mp4", root / "Raw" / "v2" / "0002.mp4", root / "Raw" / "v1" / "0010.mp4"):
        assert f"    {path}\n" in full


def test_a_manifest_may_hold_a_multi_line_transcript_in_a_quoted_field(tmp_path, clip):
    """RFC 4180 (and pandas' to_csv): a quoted field may span lines; label.csv refuses it (above)."""
    from msakit.extract.sources import read_manifest

    (tmp_path / "a.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "m.csv").write_text('path,label,text\na.mp4,1.5,"first line\nsecond line"\n')
    (only,) = read_manifest(tmp_path / "m.csv").clips
    assert only.text == "first line\nsecond line"
    (tmp_path / "bad.csv").write_text('path,label,text\na.mp4,1.5,"first line\nsecond",line\n')
    with pytest.raises(DataError, match=r"bad.csv:2: unclosed quote \(a field opened with \" on this line runs on to line 3\)"):
        read_manifest(tmp_path / "bad.csv")
