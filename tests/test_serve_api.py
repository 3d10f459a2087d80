"""``msakit serve``'s HTTP API through an in-process client: one text-only run loaded once for
the module, real clips (shared/data/media where present) and generated ones."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

for _module in ("fastapi", "httpx", "multipart", "av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

from fastapi.testclient import TestClient  # noqa: E402

from msakit.errors import ConfigError  # noqa: E402
from msakit.workflows.predict_video import ClipInput, VideoScorer  # noqa: E402
from msakit.workflows.serve import create_app, sniff_media  # noqa: E402

MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             Path("shared/data/media"))
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason="shared/data/media (real recordings) not present")
GRID = MEDIA / "grid" / "pwij3p.mpg"  # "place white in j three please", recognised the same way every time


@pytest.fixture(scope="module")
def scorer(text_only_run) -> VideoScorer:
    return VideoScorer(text_only_run, device="cpu")


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve_tmp")


@pytest.fixture(scope="module")
def client(scorer, temp_root):
    with TestClient(create_app(scorer, workers=2, queue=8, temp_dir=str(temp_root))) as client:
        yield client


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    from msakit.extract.media import voice, write_clip

    root = tmp_path_factory.mktemp("serve_clips")
    made = write_clip(root / "made.mp4", seconds=1.5, size=(160, 120), audio=voice(1.5, f0=150))
    data = made.read_bytes()
    silent = write_clip(root / "silent.mp4", seconds=1.5, size=(160, 120), audio=np.zeros(24000, np.float32)).read_bytes()
    return {"made": data, "truncated": data[: len(data) // 3], "silent": silent}


def post(client, files, **kwargs):
    return client.post("/api/predict", files=[("file", f) for f in files], **kwargs)


@needs_media
def test_predict_a_real_and_a_generated_clip_in_one_request(client, clips, temp_root):
    response = post(client, [("pwij3p.mpg", GRID.read_bytes(), "video/mpeg"), ("made.mp4", clips["made"], "video/mp4")])
    assert response.status_code == 200, response.text
    result = response.json()
    assert [r["video"] for r in result["predictions"]] == ["pwij3p.mpg", "made.mp4"] and result["failures"] == []
    real = result["predictions"][0]
    assert "white" in real["transcript"].lower() and "three" in real["transcript"].lower(), real["transcript"]
    assert all(math.isfinite(r["score"]) and r["class"] in ("negative", "neutral", "positive") for r in result["predictions"])
    assert result["speech_recognition"]["name"].startswith("moonshine") and result["modalities"] == "t"
    assert list(temp_root.iterdir()) == []  # the request's private folder is gone


@needs_media
def test_the_api_returns_what_predict_video_writes(client, text_only_run, tmp_path):
    from msakit.workflows.predict_video import predict_video

    written = predict_video(text_only_run, [GRID], tmp_path / "p.csv", transcripts=["a great film"], progress=False)
    served = post(client, [("pwij3p.mpg", GRID.read_bytes())], data={"transcript": "a great film"}).json()
    on_disk = json.loads((tmp_path / "p.json").read_text())
    for payload in (served, on_disk):
        payload["predictions"][0].pop("video")
    assert on_disk.pop("run") == str(text_only_run / "seed_1111") and "run" not in served  # no server path in the API
    assert served == on_disk and written["predictions"][0]["transcript"] == "a great film"


def test_several_clips_with_given_transcripts_and_a_timeline(client, clips, scorer):
    texts = ["a great film", "a terrible film", ""]
    files = [("c0.mp4", clips["made"]), ("c1.mp4", clips["made"]), ("c2.mp4", clips["silent"])]
    response = post(client, files, data={"transcript": texts}, params={"timeline": "true"})
    assert response.status_code == 200, response.text
    result = response.json()
    rows = result["predictions"]
    assert [r["transcript_source"] for r in rows[:2]] == ["given", "given"] and [r["transcript"] for r in rows[:2]] == texts[:2]
    # A clip of silence has no words: on a text-only run that is its own error, not a score from nothing.
    assert [f["index"] for f in result["failures"]] == [2] and result["failures"][0]["error"]["code"] == "no_speech"
    timeline = rows[0]["timeline"]
    assert timeline["series"] == {} and "words alone" in timeline["note"]  # a text-only run draws no face or audio curve
    assert 1.3 < timeline["duration_s"] < 1.7
    assert all("unimodal" not in r for r in rows)  # one modality: no per-modality number beside the score


def test_progress_streams_the_stages_then_the_result(client, clips):
    response = post(client, [("c.mp4", clips["made"])], data={"transcript": "a great film"}, params={"progress": "true"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    stages = [line.get("stage") for line in lines[:-1]]
    assert stages[0] == "queued" and "extracting" in stages and stages[-1] == "predicting"
    assert lines[-1]["result"]["predictions"][0]["transcript"] == "a great film"


@pytest.mark.bad_input
def test_bad_uploads_each_get_a_clear_status(client, clips, temp_root, tmp_path):
    cases = [
        (client.post("/api/predict", data={"transcript": "x"}, files={"other": ("a.txt", b"x")}), 400, "no clip"),
        (client.post("/api/predict", content=b"raw bytes", headers={"content-type": "application/octet-stream"}), 400, "multipart"),
        (post(client, [("empty.mp4", b"")]), 400, "empty file"),
        (post(client, [("notes.mp4", b"this is a text file, not a video\n" * 20, "video/mp4")]), 415, "not an audio or video file"),
        (post(client, [("a.mp4", clips["made"]), ("b.mp4", clips["made"])], data={"transcript": "only one"}), 400, "one 'transcript'"),
    ]
    for (response, status, words), code in zip(cases, ("no_clip", "bad_request", "empty_file", "unsupported_media", "bad_request")):
        assert response.status_code == status and words in response.json()["detail"], response.text
        assert response.json()["code"] == code
    truncated = post(client, [("cut.mp4", clips["truncated"])], data={"transcript": "a great film"})
    assert truncated.status_code == 200
    (failure,) = truncated.json()["failures"]
    message = failure["error"]["message"]
    assert failure["video"] == "cut.mp4" and failure["error"]["code"] in ("unreadable", "corrupt_stream", "too_short")
    assert "\n" not in message and "Errno" not in message and "/tmp" not in message and "msakit-serve" not in message, message
    assert not truncated.json()["predictions"]
    # A path-like name is only a label: nothing is written or read there.
    response = post(client, [("../../x.mp4", clips["made"])], data={"transcript": "a great film"})
    assert response.status_code == 200 and response.json()["predictions"][0]["video"] == "x.mp4"
    assert not (temp_root.parent / "x.mp4").exists() and not Path("x.mp4").exists() and list(temp_root.iterdir()) == []


def test_an_upload_over_the_limit_is_refused_with_413(scorer, clips):
    app = create_app(scorer, max_mb=0.01)  # 10 kB; no lifespan here: nothing is extracted
    small = TestClient(app)  # no lifespan: no worker is started
    if True:
        response = post(small, [("c.mp4", clips["made"])])
        assert response.status_code == 413 and "--max-mb" in response.json()["detail"]

        def chunks():  # no Content-Length: counted as it arrives
            yield b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.mp4\"\r\n\r\n"
            for _ in range(20):
                yield b"\0" * 1000

        response = small.post("/api/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        assert response.status_code == 413


def test_a_token_when_set_is_asked_for(scorer):
    guarded = TestClient(create_app(scorer, token="s3cret"))  # no lifespan: no worker is started
    if True:
        assert guarded.get("/api/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            for response in (guarded.get("/api/model", headers=headers), guarded.post("/api/predict", headers=headers)):
                assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        schema = guarded.get("/openapi.json").json()  # the docs can send the token ("Authorize")
        assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "description": "the server's --token"}
        assert schema["paths"]["/api/predict"]["post"]["security"] == [{"bearer": []}] and "security" not in schema["paths"]["/api/health"]["get"]
        ok = {"Authorization": "Bearer s3cret"}
        assert guarded.get("/api/model", headers=ok).json()["token_required"] is True
        assert guarded.post("/api/predict", headers=ok, files={"other": ("a", b"x")}).status_code == 400  # past the token check


def test_a_full_queue_answers_503_with_retry_after(scorer, clips):
    app = create_app(scorer, workers=1, queue=0)
    with TestClient(app) as busy:
        pool = app.state.msakit.pool
        assert pool.admit(1)  # the one place is taken
        try:
            response = post(busy, [("c.mp4", clips["made"])], data={"transcript": "a"})
            assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        finally:
            pool.release(1)
        assert post(busy, [("c.mp4", clips["made"])], data={"transcript": "a"}).status_code == 200


def test_twenty_requests_four_at_a_time_get_their_own_results(client, clips, scorer, temp_root, tmp_path):
    texts = [f"{'a great film' if i % 2 else 'a terrible film'} {'really ' * (i % 5)}{i}" for i in range(20)]
    expected_clips = [ClipInput(tmp_path / "x.mp4", f"clip{i}.mp4", t) for i, t in enumerate(texts)]
    extracted = [{"text": t, "asr": False, "duration_s": 1.5} for t in texts]
    expected = {r["video"]: r for r in scorer.score(expected_clips, extracted, tmp_path)["predictions"]}

    def one(i):
        return post(client, [(f"clip{i}.mp4", clips["made"])], data={"transcript": texts[i]})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(one, range(20)))
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        (row,) = response.json()["predictions"]
        assert row["video"] == f"clip{i}.mp4" and row["transcript"] == texts[i]
        assert row["score"] == pytest.approx(expected[f"clip{i}.mp4"]["score"], abs=1e-4)
    assert list(temp_root.iterdir()) == []


def test_model_health_and_schema(client):
    model = client.get("/api/model").json()
    assert model["model"] == "self_mm" and model["modalities"] == "t" and "MAE" in model["metrics"]
    assert model["speech_recognition"]["version"] and "audio and vision are not used" in model["note"]
    assert "run" not in model and "/" not in model["description"] and model["description"].startswith("Self-MM reading text")
    quality = model["quality"]
    assert quality["acc2_name"] == "Acc-2 (non-0)" and quality["acc2"] == model["metrics"]["Acc-2 (non-0)"]
    assert quality["mae"] == model["metrics"]["MAE"] and model["absent_ok"] == []
    assert client.get("/api/health").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/model", "/api/health"} <= set(schema["paths"])
    # An integrator's schema: response bodies and every refusal with its body.
    predict = schema["paths"]["/api/predict"]["post"]["responses"]
    assert {"200", "400", "401", "413", "415", "503"} <= set(predict)
    assert predict["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PredictResponse"}
    assert predict["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    components = schema["components"]["schemas"]
    assert {"index", "video", "score", "class", "warnings", "used"} <= set(components["ClipResult"]["properties"])
    assert set(components["ClipFailure"]["properties"]) == {"index", "video", "error"}
    assert "quality" in components["ModelInfo"]["properties"]
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert "http" not in "".join(line for line in page.text.splitlines() if "src=" in line or "href=" in line)  # no CDN


def test_cancelled_waiting_clips_never_run(tmp_path):
    import asyncio

    from msakit.workflows.serve.app import ExtractionPool

    pool = ExtractionPool(workers=1, queue=4)
    marker = tmp_path / "ran"

    async def scenario():
        first = asyncio.ensure_future(pool.run(time.sleep, 1.0))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(pool.run(marker.touch))
        await asyncio.sleep(0.05)
        waiting.cancel()  # its client went away while it waited for the worker
        await first
        await asyncio.sleep(0.3)

    try:
        asyncio.run(scenario())
    finally:
        pool.close()
    assert not marker.exists()


def test_options_are_safe_by_default(scorer, capsys, text_only_run):
    from msakit.cli import main

    with pytest.raises(ConfigError, match="--token"):
        create_app(scorer, host="0.0.0.0")
    assert main(["serve", str(text_only_run), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--token" in err and "\n" not in err
    for bad in ({"max_mb": 0}, {"workers": 0}, {"port": 70000}):
        with pytest.raises(ConfigError):
            create_app(scorer, **bad)


def test_content_is_sniffed_not_the_name():
    assert sniff_media(b"\0\0\0\x20ftypisom" + b"\0" * 20) == ".mp4"
    assert sniff_media(b"\x1a\x45\xdf\xa3" + b"\0" * 20) == ".mkv"
    assert sniff_media(b"RIFF\0\0\0\0WAVEfmt ") == ".wav"
    assert sniff_media(b"\0\0\x01\xba" + b"\0" * 20) == ".mpg"
    assert sniff_media(b"<html><body>") is None and sniff_media(b"PK\x03\x04") is None


def test_importing_msakit_and_serve_loads_no_web_or_extraction_library():
    code = ("import sys, msakit, msakit.workflows.serve; "
            "print([m for m in ('fastapi', 'uvicorn', 'av', 'librosa', 'mediapipe', 'moonshine_voice') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
