"""The scoring path (``predict --video``, the API) on a run that uses text, audio and vision:
every clip ends as a score or as its own error, never as a crash of the batch or a score
without a basis; the run being read is never written; the server's hygiene (logs, token, port,
workers, cache). Each test names the input that showed the defect."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

for _module in ("fastapi", "httpx", "multipart", "av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

from fastapi.testclient import TestClient  # noqa: E402

from msakit.errors import ConfigError  # noqa: E402
from msakit.workflows.predict_video import VideoScorer, predict_video  # noqa: E402
from msakit.workflows.serve import create_app  # noqa: E402


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray((np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    from msakit.extract.media import voice, write_clip

    root = tmp_path_factory.mktemp("scoring_media")
    return {
        "good": write_clip(root / "good.mp4", seconds=1.0, size=(160, 120), audio=voice(1.0, f0=200, seed=3)),
        "audio_only": write_wav(root / "speech.wav", voice(1.0, f0=180, seed=4)),
        "silent": write_clip(root / "silent.mp4", seconds=1.0, size=(160, 120), audio=np.zeros(16000, np.float32)),
        "no_face": write_clip(root / "noface.mp4", seconds=1.0, size=(160, 120), face=False, audio=voice(1.0, seed=5)),
    }


@pytest.fixture(scope="module")
def strict_run(clip_run, tmp_path_factory) -> Path:
    """The same run, its config saying it was trained with no modality withheld (as a run made
    with --set train.modality_dropout=none is): it has never seen a clip without vision."""
    run = tmp_path_factory.mktemp("strict") / "run"
    shutil.copytree(clip_run, run)
    config_path = run / "seed_1111" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["train"]["modality_dropout"]  # the default withholds audio and vision
    config["train"]["modality_dropout"] = ""
    config_path.write_text(json.dumps(config))
    return run


def by_name(result: dict) -> tuple[dict, dict]:
    return ({Path(r["video"]).name: r for r in result["predictions"]}, {Path(f["video"]).name: f for f in result["failures"]})


@pytest.mark.bad_input
def test_an_audio_only_clip_on_a_run_trained_without_vision_at_times_is_scored_without_vision_and_says_so(clip_run, media, tmp_path):
    scorer = VideoScorer(clip_run, device="cpu")
    assert scorer.modalities == "tav" and scorer.absent_ok == "av"
    # The input of the outside test: an audio file in the same batch as a good video (once a KeyError: 'vision', exit 70).
    result = predict_video(clip_run, [media["audio_only"], media["good"]], tmp_path / "p.csv", transcripts=["a great film", "a great film"],
                           progress=False)
    rows, failures = by_name(result)
    assert not failures and set(rows) == {"speech.wav", "good.mp4"}
    audio_only, good = rows["speech.wav"], rows["good.mp4"]
    assert audio_only["used"] == ["text", "audio"] and good["used"] == ["text", "audio", "vision"]
    assert [w["code"] for w in audio_only["warnings"]] == ["vision_absent"] and good["warnings"] == []
    assert "no video track" in audio_only["warnings"][0]["message"] and "25%" in audio_only["warnings"][0]["message"]
    assert "vision" not in audio_only["unimodal"] and set(good["unimodal"]) == {"text", "audio", "vision"}
    assert np.isfinite(audio_only["score"])
    with open(tmp_path / "p.csv", newline="") as file:
        table = {Path(r["video"]).name: r for r in csv.DictReader(file)}
    assert "vision" in table["speech.wav"]["warnings"] and table["speech.wav"]["used"] == "text+audio"


@pytest.mark.bad_input
def test_an_absent_modality_is_given_to_the_model_as_training_withheld_it(clip_run, tmp_path):
    """The score of a clip with vision absent equals the model's prediction on the same clip with
    its vision frames zeroed after standardisation and its length the training split's width,
    marked absent, as modality dropout gave it in training; whatever else is in the request."""
    import dataclasses

    import torch

    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder
    from msakit.data.standardize import load_run_standardizer
    from msakit.training.runs import load_run, predict_split

    seed_dir = clip_run / "seed_1111"
    data = clip_run.parent / "feats.pkl"
    absent = np.array([True, False])
    got, _, _ = predict_split(seed_dir, data, None, "test", "cpu", absent={"v": absent}, cache=False)
    model, tokenizer, meta = load_run(seed_dir, "cpu")
    width = meta["absent_frames"]["v"]
    assert width == load_dataset(data, "mosi", ("t", "a", "v"), splits=("train",), cache=False)["train"].vision.shape[1]
    split = load_run_standardizer(seed_dir).apply(load_dataset(data, "mosi", ("t", "a", "v"), splits=("test",), cache=False)["test"])
    if split.vision.shape[1] < width:
        split = dataclasses.replace(split, vision=np.pad(split.vision, ((0, 0), (0, width - split.vision.shape[1]), (0, 0))))
    builder = BatchBuilder(split, ("t", "a", "v"), tokenizer)
    batch = builder.make_batch(np.arange(2), {"v": absent})
    assert int(batch.vision_lengths[0]) == width
    with torch.no_grad():
        expected = model(batch).predictions["m"].numpy().reshape(-1)
    assert got["m"].reshape(-1) == pytest.approx(expected, abs=1e-6)
    plain, _, _ = predict_split(seed_dir, data, None, "test", "cpu", cache=False)
    assert got["m"][1] == pytest.approx(plain["m"][1], abs=1e-6) and got["m"][0] != pytest.approx(plain["m"][0], abs=1e-6)


@pytest.mark.bad_input
def test_a_run_never_trained_without_vision_refuses_the_audio_only_clip_and_scores_the_rest(strict_run, media, tmp_path, capsys):
    from msakit.cli import main

    argv = ["predict", str(strict_run), "--video", str(media["audio_only"]), str(media["good"]), str(media["no_face"]),
            "--transcript", "a great film", "--transcript", "a great film", "--transcript", "a great film", "--output", str(tmp_path / "p.csv")]
    assert main(argv) == 1  # written, but not every clip was scored
    captured = capsys.readouterr()
    assert "2 of 3 clip(s) not scored" in captured.err and "Traceback" not in captured.err
    result = json.loads((tmp_path / "p.json").read_text())
    rows, failures = by_name(result)
    assert set(rows) == {"good.mp4"} and set(failures) == {"speech.wav", "noface.mp4"}
    assert failures["speech.wav"]["error"]["code"] == "no_video_track" and failures["noface.mp4"]["error"]["code"] == "no_face"
    assert "not trained to score a clip without vision" in failures["speech.wav"]["error"]["message"]
    assert [f["index"] for f in result["failures"]] == [0, 2] and result["predictions"][0]["index"] == 1
    with open(tmp_path / "p.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [Path(r["video"]).name for r in table] == ["speech.wav", "good.mp4", "noface.mp4"]  # the clips' own order
    assert [r["error_code"] for r in table] == ["no_video_track", "", "no_face"]


@pytest.mark.bad_input
def test_a_clip_without_speech_gets_no_score_from_an_empty_transcript(clip_run, text_only_run, media, tmp_path):
    for run in (clip_run, text_only_run):
        result = predict_video(run, [media["silent"], media["good"]], tmp_path / f"{run.parent.name}.csv",
                               transcripts=["", "a great film"], progress=False)
        rows, failures = by_name(result)
        assert set(rows) == {"good.mp4"}, result
        assert failures["silent.mp4"]["error"]["code"] == "no_speech"
        assert "give its transcript" in failures["silent.mp4"]["error"]["message"]


@pytest.mark.bad_input
def test_the_api_returns_every_clip_as_a_result_or_its_own_error(clip_run, media, tmp_path):
    app = create_app(VideoScorer(clip_run, device="cpu"), workers=1, temp_dir=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    files = [("file", (p.name, p.read_bytes())) for p in (media["audio_only"], media["good"], media["silent"])]
    with TestClient(app) as client:
        response = client.post("/api/predict", files=files, params={"timeline": "true"})
        assert response.status_code == 200, response.text
        result = response.json()
        info = client.get("/api/model").json()
    rows, failures = by_name(result)
    assert set(rows) == {"speech.wav", "good.mp4"} and set(failures) == {"silent.mp4"}
    assert failures["silent.mp4"]["error"] == {"code": "no_speech", "message": failures["silent.mp4"]["error"]["message"]}
    assert rows["speech.wav"]["warnings"][0]["code"] == "vision_absent"
    series = rows["good.mp4"]["timeline"]["series"]
    assert set(series) == {"audio_level", "voiced", "face_present", "mouth_open", "smile", "brow_raise", "eye_open"}
    assert series["audio_level"]["unit"] == "dBFS" and series["face_present"]["label"] == "face found"
    assert set(rows["speech.wav"]["timeline"]["series"]) == {"audio_level", "voiced"}  # no face curve for a clip without video
    assert info["absent_ok"] == ["audio", "vision"] and "without audio or vision" in info["description"]
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.bad_input
def test_output_inside_the_run_is_refused_with_or_without_overwrite(clip_run, media, tmp_path, capsys):
    from msakit.cli import main

    run = tmp_path / "run"
    shutil.copytree(clip_run, run)
    model_json = run / "seed_1111" / "best" / "model.json"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for target in (model_json, run / "seed_1111" / "new.csv", run / "preds.csv", run / "summary.csv"):
        for given, extra in ((run, []), (run, ["--overwrite"]), (run / "seed_1111", ["--overwrite"])):  # a seed folder given: its run too
            argv = ["predict", str(given), "--video", str(media["good"]), "--transcript", "a great film", "--output", str(target), *extra]
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert "inside the run being read" in err and "\n" not in err, err
        assert main(["predict", str(run), "--data", str(clip_run.parent / "feats.pkl"), "--output", str(target), "--overwrite"]) == 2
        assert "inside the run being read" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    VideoScorer(run, device="cpu")  # the run still loads


@pytest.mark.bad_input
def test_scoring_leaves_no_cache_entry_and_nothing_beside_the_run(clip_run, media, tmp_path):
    from msakit.data.locations import cache_dir

    features = cache_dir() / "features"
    entries = lambda: sorted(str(p) for p in features.rglob("*")) if features.exists() else []  # noqa: E731
    before, run_before = entries(), sorted(clip_run.rglob("*"))
    app = create_app(VideoScorer(clip_run, device="cpu"), workers=1)
    with TestClient(app) as client:
        for i in range(20):
            response = client.post("/api/predict", files=[("file", (f"c{i}.mp4", media["good"].read_bytes()))], data={"transcript": "a great film"})
            assert response.status_code == 200 and len(response.json()["predictions"]) == 1
    assert entries() == before  # the temporary pickles were read without the feature cache
    assert sorted(clip_run.rglob("*")) == run_before


@pytest.mark.bad_input
def test_control_characters_in_a_request_path_are_escaped_in_the_log(text_only_run, caplog):
    client = TestClient(create_app(VideoScorer(text_only_run, device="cpu")))
    with caplog.at_level(logging.INFO, logger="msakit.serve"):
        assert client.get("/api/he%0aalth%1b[31m%0d").status_code == 404
    (line,) = [r.getMessage() for r in caplog.records if r.name == "msakit.serve" and "/api/he" in r.getMessage()]
    assert "\n" not in line and "\x1b" not in line and "\r" not in line and "/api/he\\nalth\\x1b[31m\\r" in line
    from msakit.workflows.serve.app import EscapeControl

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "path %s", ("a\nforged line\x1b[2J",), None)
    assert EscapeControl().filter(record) and record.getMessage() == "path a\\nforged line\\x1b[2J"


@pytest.mark.bad_input
def test_an_empty_token_is_refused_like_an_empty_environment_variable(text_only_run, capsys, monkeypatch):
    from msakit.cli import main

    monkeypatch.delenv("MSAKIT_SERVE_TOKEN", raising=False)
    assert main(["serve", str(text_only_run), "--token", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert "--token: empty" in err and "\n" not in err
    monkeypatch.setenv("MSAKIT_SERVE_TOKEN", "  ")
    assert main(["serve", str(text_only_run)]) == 2
    assert "MSAKIT_SERVE_TOKEN: empty" in capsys.readouterr().err


@pytest.mark.bad_input
def test_a_busy_port_or_a_bad_address_is_one_line_before_the_model_loads(text_only_run, capsys, monkeypatch):
    from msakit.cli import main

    monkeypatch.delenv("MSAKIT_SERVE_TOKEN", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", str(text_only_run), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port} is already in use" in err and "--port 0" in err
    assert "loading" not in err and "Traceback" not in err  # refused before the model and the workers
    assert main(["serve", str(text_only_run), "--host", "::2", "--token", "t"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--host ::2" in err and "loading" not in err


@pytest.mark.bad_input
def test_api_refusals_have_a_code_and_name_the_real_limit(text_only_run):
    client = TestClient(create_app(VideoScorer(text_only_run, device="cpu"), max_clips=4))
    head = b"\0\0\0\x20ftypisom" + b"\0" * 100
    response = client.post("/api/predict", files=[("file", (f"c{i}.mp4", head)) for i in range(6)])
    assert response.status_code == 413 and response.json() == {"code": "too_many_clips", "detail": response.json()["detail"]}
    assert "at most 4" in response.json()["detail"]  # not the parser's "Maximum number of files is 5"
    response = client.post("/api/predict", files=[("file", ("x" * 20000 + ".mp4", head))])
    assert response.status_code == 400 and response.json()["code"] == "bad_multipart" and "file name" in response.json()["detail"]
    assert client.get("/nowhere").json()["code"] == "not_found"


def _suicide() -> None:
    os.kill(os.getpid(), 9)


def _pid() -> int:
    return os.getpid()


@pytest.mark.bad_input
def test_a_worker_that_dies_is_named_for_its_clip_and_an_idle_death_blames_no_clip(tmp_path):
    import asyncio

    from msakit.workflows.serve.app import ExtractionPool

    pool = ExtractionPool(workers=1, queue=4)
    try:
        died = asyncio.run(pool.run(_suicide))
        assert died["error"]["code"] == "worker_stopped" and "signal 9 (SIGKILL)" in died["error"]["message"], died
        first = asyncio.run(pool.run(_pid))  # a fresh worker takes the next clip
        os.kill(first, 9)  # the worker dies while idle
        for _ in range(100):
            if getattr(pool._executor, "_broken", False):
                break
            asyncio.run(asyncio.sleep(0.05))
        second = asyncio.run(pool.run(_pid))
        assert isinstance(second, int) and second != first  # the next clip ran in a fresh worker, with no error
    finally:
        pool.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_native_libraries_chatter_never_reaches_the_terminal_of_predict_video(clip_run, media, tmp_path, workers):
    import subprocess
    import sys

    command = [sys.executable, "-m", "msakit.cli", "predict", str(clip_run), "--video", str(media["good"]), str(media["no_face"]),
               "--output", str(tmp_path / "p.csv"), "--workers", workers]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    for noise in ("TensorFlow Lite", "W0000", "absl::", "inference_feedback_manager", "XNNPACK"):
        assert noise not in done.stderr and noise not in done.stdout, done.stderr
    assert "good.mp4" in done.stdout and "vision_absent" in done.stdout  # msakit's own output still shows


@pytest.mark.bad_input
def test_a_transcript_longer_than_the_encoder_is_truncated_and_a_wordless_one_is_no_speech(clip_run, text_only_run, media, tmp_path):
    long_text = " ".join(["a great film"] * 40)  # 120 words: more tokens than the tiny encoder's 64 positions
    for run in (clip_run, text_only_run):
        result = predict_video(run, [media["good"], media["good"]], tmp_path / f"{run.parent.name}.csv",
                               transcripts=[long_text, "\x00\x01\x1b\x07"], progress=False)
        rows, _ = by_name(result)
        assert [r["index"] for r in result["predictions"]] == [0] and np.isfinite(result["predictions"][0]["score"])
        (failure,) = result["failures"]
        assert failure["index"] == 1 and failure["error"]["code"] == "no_speech", failure
        assert "the given transcript has no words" in failure["error"]["message"]


@pytest.mark.bad_input
def test_a_command_line_mistake_is_one_line_not_the_usage(text_only_run, capsys):
    from msakit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(text_only_run), "--video", "--output", "x.csv"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
    assert "--video: expected at least one argument" in err and "msakit predict --help" in err


@pytest.mark.bad_input
def test_a_blank_transcript_means_recognise_the_speech_on_the_cli_as_in_the_api(text_only_run, media, tmp_path):
    result = predict_video(text_only_run, [media["silent"]], tmp_path / "p.csv", transcripts=[" \t \n "], progress=False)
    (failure,) = result["failures"]
    assert failure["error"]["code"] == "no_speech" and failure["error"]["message"].startswith("no speech recognised")


@pytest.mark.bad_input
def test_a_file_cut_short_is_scored_on_what_was_decoded_with_a_warning(clip_run, tmp_path):
    import av

    from msakit.extract.media import voice

    # A "fast start" MP4 (its index first, as streamed video is), cut at 40 %: it still opens.
    source = tmp_path / "long.mp4"
    from msakit.extract.media import write_clip

    write_clip(source, seconds=4.0, size=(160, 120), audio=voice(4.0, seed=7))
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(source)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("audio", "video")}
        for packet in src.demux():
            if packet.dts is not None and packet.stream.index in streams:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.4)])
    result = predict_video(clip_run, [cut], tmp_path / "p.csv", transcripts=["a great film"], progress=False)
    if result["failures"]:  # a cut the decoder refuses outright is an error of its own: also not a silent score
        assert result["failures"][0]["error"]["code"] in ("unreadable", "corrupt_stream", "too_short")
    else:
        (row,) = result["predictions"]
        assert "truncated" in [w["code"] for w in row["warnings"]], row["warnings"]


def test_extraction_workers_end_with_a_parent_killed_outright(tmp_path):
    """A parent killed with SIGKILL (out of memory, say) leaves no worker waiting forever."""
    import subprocess
    import sys
    import time

    code = ("import multiprocessing, os, sys\n"
            "from concurrent.futures import ProcessPoolExecutor\n"
            "from msakit.workflows.predict_video import silence_native_output\n"
            "if __name__ == '__main__':\n"
            "    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('spawn'), initializer=silence_native_output)\n"
            "    pids = {pool.submit(os.getpid).result() for _ in range(8)}\n"
            "    print(' '.join(map(str, pids)), flush=True)\n"
            "    os.kill(os.getpid(), 9)\n")
    script = tmp_path / "parent.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    pids = [int(p) for p in done.stdout.split()]
    assert done.returncode == -9 and pids
    deadline = time.monotonic() + 15
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
    assert not alive, f"workers {alive} outlived their killed parent"


def _slow_ok() -> str:
    import time

    time.sleep(1.0)
    return "ok"


@pytest.mark.bad_input
def test_a_clip_beside_the_one_that_kills_its_worker_is_not_blamed():
    import asyncio

    from msakit.workflows.serve.app import ExtractionPool

    pool = ExtractionPool(workers=2, queue=4)

    async def both():
        return await asyncio.gather(pool.run(_slow_ok), pool.run(_suicide))

    try:
        innocent, culprit = asyncio.run(both())
    finally:
        pool.close()
    assert innocent == "ok" and culprit["error"]["code"] == "worker_stopped" and "twice" in culprit["error"]["message"]


def test_predict_video_with_workers_retries_the_clips_a_dead_worker_took_with_it(clip_run, media, tmp_path, monkeypatch):
    """A clip that kills its worker is named; the clips that were in the pool with it are scored."""
    import msakit.workflows.predict_video as pv

    scorer = VideoScorer(clip_run, device="cpu")
    killer = tmp_path / "killer.mp4"
    killer.write_bytes(media["good"].read_bytes())
    clips = [pv.ClipInput(media["good"], "a.mp4", "a great film"), pv.ClipInput(killer, "killer.mp4", "a great film"),
             pv.ClipInput(media["audio_only"], "b.wav", "a great film")]
    monkeypatch.setattr(pv, "extract_one", _extract_or_die)  # workers are spawned: they import this test module's function
    results = scorer.extract(clips, workers=2)
    assert "error" not in results[0] and "error" not in results[2], results
    assert results[1]["error"]["code"] == "worker_stopped" and "signal 9" in results[1]["error"]["message"]


def _extract_or_die(path, *args):
    from msakit.workflows.predict_video import extract_one

    if path.endswith("killer.mp4"):
        import time

        time.sleep(0.3)  # the others are in the pool by then
        os.kill(os.getpid(), 9)
    return extract_one(path, *args)


@pytest.mark.bad_input
def test_a_clip_without_vision_scores_the_same_alone_or_beside_others(clip_run, media, tmp_path):
    from msakit.extract.media import voice, write_clip

    long_clip = write_clip(tmp_path / "long.mp4", seconds=4.0, size=(160, 120), audio=voice(4.0, seed=9))
    alone = predict_video(clip_run, [media["audio_only"]], tmp_path / "a.csv", transcripts=["a great film"], progress=False)
    beside = predict_video(clip_run, [long_clip, media["audio_only"], media["good"]], tmp_path / "b.csv",
                           transcripts=["a great film"] * 3, progress=False)
    assert alone["predictions"][0]["score"] == beside["predictions"][1]["score"]


@pytest.mark.bad_input
def test_a_token_no_client_could_send_is_refused(text_only_run):
    for token in (" secret", "secret ", "pässwort", "se\x01cret"):
        with pytest.raises(ConfigError, match="printable ASCII"):
            create_app(VideoScorer(text_only_run, device="cpu"), token=token)


@pytest.mark.bad_input
def test_a_run_reading_only_text_and_audio_extracts_neither_face_nor_refuses_for_it(clip_run, tiny_bert_dir, media, tmp_path):
    import msakit

    run = msakit.train("self_mm", clip_run.parent / "feats.pkl", run_dir=tmp_path / "ta", overrides={
        "model": {"text_encoder": str(tiny_bert_dir)},
        "data": {"modalities": ("t", "a")}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False}}).run_dir
    scorer = VideoScorer(run, device="cpu")
    assert scorer.settings.modalities == "ta"
    result = predict_video(run, [media["audio_only"], media["no_face"]], tmp_path / "p.csv", transcripts=["a great film"] * 2,
                           progress=False)
    assert not result["failures"] and all(r["warnings"] == [] and r["used"] == ["text", "audio"] for r in result["predictions"])
