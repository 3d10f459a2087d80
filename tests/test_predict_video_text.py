"""Text-only runs score clips: ``predict --video`` recognises the speech (or takes a given
transcript) and predicts, with no extractor sidecar; runs that use audio or vision still need
the matching extractor. Real clips from shared/data/media where present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

for _module in ("av", "librosa", "mediapipe", "moonshine_voice"):
    pytest.importorskip(_module)

from msakit.errors import DataError, RunDirError  # noqa: E402

MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             Path("shared/data/media"))
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason="shared/data/media (real recordings) not present")
# pwij3p: recognised the same way every time (bbaf2n, for one, is not; see the report of issue 20)
GRID = MEDIA / "grid" / "pwij3p.mpg"


@pytest.fixture(scope="module")
def text_run(text_only_run) -> Path:
    return text_only_run


@needs_media
def test_text_only_run_scores_a_real_clip_from_its_recognised_speech(text_run, tmp_path, capsys):
    from msakit.cli import main
    from msakit.extract.asr import word_error_rate

    assert not list(text_run.glob("seed_*/best/extractor.json"))  # trained on a text table: no sidecar
    assert main(["predict", str(text_run), "--video", str(GRID), "--output", str(tmp_path / "pred.csv")]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("audio and vision are not used") == 1
    result = json.loads((tmp_path / "pred.json").read_text())
    (row,) = result["predictions"]
    assert math.isfinite(row["score"]) and row["class"] in ("negative", "neutral", "positive")
    assert row["transcript_source"] == "speech recognition"
    assert word_error_rate(["place white in j three please"], [row["transcript"]]) <= 0.34, row["transcript"]
    assert result["speech_recognition"]["name"].startswith("moonshine") and result["speech_recognition"]["version"] not in ("", "absent")
    assert result["modalities"] == "t" and not result["failures"]
    assert "pwij3p.mpg" in captured.out and (tmp_path / "pred.csv").read_text().count("\n") == 2


@needs_media
def test_given_transcript_is_used_and_outputs_are_never_silently_replaced(text_run, tmp_path, capsys):
    from msakit.cli import main

    output = tmp_path / "given.csv"
    argv = ["predict", str(text_run), "--video", str(GRID), str(GRID), "--transcript", "a great film", "--transcript", "a terrible film",
            "--output", str(output)]
    assert main(argv) == 0
    rows = json.loads(output.with_suffix(".json").read_text())["predictions"]
    assert [r["transcript"] for r in rows] == ["a great film", "a terrible film"]
    assert {r["transcript_source"] for r in rows} == {"given"}
    # Each score is the model's on that text: the same as predicting a table holding it.
    import csv

    import msakit

    from conftest import write_text_table

    table = write_text_table(tmp_path / "table")
    (table / "test.tsv").write_text("text\tlabel\na great film\t0\na terrible film\t0\n")
    with open(msakit.predict(text_run, table, tmp_path / "table.csv")) as file:
        expected = [float(r["prediction"]) for r in csv.DictReader(file)]
    assert [r["score"] for r in rows] == pytest.approx(expected, abs=1e-4)
    capsys.readouterr()
    before = output.read_bytes()
    assert main(argv) == 2  # exists: refused before any work
    err = capsys.readouterr().err
    assert "--output" in err and "exists" in err and "--overwrite" in err and output.read_bytes() == before
    assert main(argv + ["--overwrite"]) == 0
    # --output X.csv must not write over an existing X.json either
    (tmp_path / "other.json").write_text("{}")
    assert main(argv[:-1] + [str(tmp_path / "other.csv")]) == 2
    assert "other.json" in capsys.readouterr().err and (tmp_path / "other.json").read_text() == "{}"
    assert main(["predict", str(text_run), "--video", str(GRID), "--output", str(tmp_path)]) == 2
    assert "--output" in capsys.readouterr().err
    assert main(["predict", str(text_run), "--video", str(GRID), "--transcript", "a", "--transcript", "b", "--output", str(tmp_path / "n.csv")]) == 2
    assert "--transcript" in capsys.readouterr().err


def test_text_only_run_with_a_given_transcript_needs_no_sound(text_run, tmp_path):
    from msakit.extract.media import write_clip
    from msakit.workflows.predict_video import predict_video

    silent = write_clip(tmp_path / "silent.mp4", seconds=1.0, size=(160, 120))  # no audio track at all
    result = predict_video(text_run, [silent], tmp_path / "p.csv", transcripts=["a great film"], progress=False)
    assert result["predictions"][0]["transcript"] == "a great film"
    # Nothing to recognise: the clip's own error, written like any other result, not an exception.
    result = predict_video(text_run, [silent], tmp_path / "q.csv", progress=False)
    (failure,) = result["failures"]
    assert not result["predictions"] and failure["error"]["code"] == "no_audio_track"
    assert "give the clip's transcript" in failure["error"]["message"] and "manifest" not in failure["error"]["message"]
    assert "no_audio_track" in (tmp_path / "q.csv").read_text()


def test_runs_with_audio_or_vision_still_need_the_matching_extractor(small_synthetic, tiny_bert_dir, tmp_path):
    import msakit
    from msakit.extract import ExtractSettings, describe
    from msakit.extract.media import voice, write_clip
    from msakit.workflows.predict_video import predict_video

    overrides = {"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False}}
    run = msakit.train("self_mm", small_synthetic, run_dir=tmp_path / "run", overrides=overrides).run_dir
    clip = write_clip(tmp_path / "c.mp4", seconds=1.0, size=(160, 120), audio=voice(1.0))
    with pytest.raises(RunDirError, match="no extractor description"):
        predict_video(run, [clip], tmp_path / "p.csv", progress=False)
    sidecar = run / "seed_1111" / "best" / "extractor.json"
    description = describe(ExtractSettings())
    for change, expected in (({"extractor_version": 0}, "extractor version"),
                             ({"features": {**description["features"], "audio": {**description["features"]["audio"], "dim": 20}}}, "audio feature dim")):
        sidecar.write_text(json.dumps({**description, **change}))
        with pytest.raises(DataError, match=expected):
            predict_video(run, [clip], tmp_path / "p.csv", progress=False)
    assert not (tmp_path / "p.csv").exists()
