"""Pretrained encoder feature sets from local directories, tested with tiny randomly initialised
models that the tests build and save (nothing downloads): a speech encoder's hidden states
(wav2vec 2.0, HuBERT, WavLM, data2vec-audio) with the layer chosen, an image encoder (ViT,
DINOv2, CLIP vision) on the aligned face crops, a text encoder's hidden states beside the
transcript. Shapes, frame rates, determinism (the same bytes twice, with 1 and 2 workers), the
cache key, one-line refusals; and a run trained on such features scores a new clip through
``predict --video`` and the API with the settings read back from the run, and refuses features
made with another set."""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

for _module in ("av", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module, reason="extraction needs the video extra")

import msakit  # noqa: E402
from msakit.errors import ConfigError, DataError  # noqa: E402
from msakit.extract import ExtractSettings, describe  # noqa: E402
from msakit.extract.featuresets import module  # noqa: E402
from msakit.extract.media import voice, write_clip  # noqa: E402

SR = 16000
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)


def speech_model(directory: Path, kind: str = "wav2vec2", seed: int = 0, **extra) -> Path:
    import torch
    import transformers as T

    config = dict(TINY, conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8, **extra)
    if kind == "data2vec-audio":
        config.update(num_conv_pos_embeddings=4, conv_pos_kernel_size=4)
    Config, Model = {"wav2vec2": (T.Wav2Vec2Config, T.Wav2Vec2Model), "hubert": (T.HubertConfig, T.HubertModel),
                     "wavlm": (T.WavLMConfig, T.WavLMModel), "data2vec-audio": (T.Data2VecAudioConfig, T.Data2VecAudioModel)}[kind]
    torch.manual_seed(seed)
    Model(Config(**config)).save_pretrained(str(directory))
    return directory


def image_model(directory: Path, kind: str = "vit") -> Path:
    import torch
    import transformers as T

    Config, Model = {"vit": (T.ViTConfig, T.ViTModel), "dinov2": (T.Dinov2Config, T.Dinov2Model),
                     "clip_vision_model": (T.CLIPVisionConfig, T.CLIPVisionModel)}[kind]
    torch.manual_seed(0)
    Model(Config(image_size=32, patch_size=8, **TINY)).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_encoders")
    out = {kind: speech_model(root / kind, kind) for kind in ("wav2vec2", "hubert", "wavlm", "data2vec-audio")}
    out.update({kind: image_model(root / kind, kind) for kind in ("vit", "dinov2", "clip_vision_model")})
    return out


def _speech_features(settings: ExtractSettings, signal: np.ndarray, pieces: int = 3) -> np.ndarray:
    featurizer = module("audio", "speech_encoder").featurizer(settings)
    for chunk in np.array_split(signal, pieces):
        featurizer.push(chunk)
    return featurizer.finish()


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm", "data2vec-audio"])
def test_a_speech_encoder_gives_its_hidden_states_at_50_frames_a_second(models, kind):
    import torch

    signal = voice(2.3, seed=1)
    settings = ExtractSettings(audio_features="speech_encoder", audio_encoder=str(models[kind])).validate()
    features = _speech_features(settings, signal)
    assert features.shape == ((len(signal) - 400) // 320 + 1, 16) and features.dtype == np.float32
    audio = describe(settings)["features"]["audio"]
    assert audio["rate_hz"] == 50.0 and audio["dim"] == 16 and audio["model_type"] == kind and audio["layers_averaged"] == [2, 2]
    assert features.tobytes() == _speech_features(settings, signal, pieces=7).tobytes()  # the same bytes, however decoded
    # The layer choice: layer 0, the last, the mean of 1..2 are the model's own hidden states.
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(models[kind]), local_files_only=True).eval()
    x = (signal - signal.mean()) / np.sqrt(signal.var() + 1e-7)
    with torch.inference_mode():
        hidden = [h[0].numpy() for h in model(torch.from_numpy(x.astype(np.float32))[None], output_hidden_states=True).hidden_states]
    for layer, expected in (("0", hidden[0]), ("last", hidden[2]), ("mean", (hidden[1] + hidden[2]) / 2)):
        chosen = _speech_features(ExtractSettings(audio_features="speech_encoder", audio_encoder=str(models[kind]), audio_layer=layer), signal)
        np.testing.assert_allclose(chosen, expected, atol=2e-5, err_msg=layer)


def test_a_long_clip_is_encoded_in_windows_whose_frames_line_up(tmp_path, monkeypatch):
    from msakit.extract.featuresets import speech_encoder

    signal = voice(3.0, seed=2)
    # Layer-normalised convolutions (as wav2vec 2.0 large, WavLM, HuBERT large): each frame sees its own samples only.
    directory = speech_model(tmp_path / "w2v_layer_norm", feat_extract_norm="layer", conv_bias=True)
    settings = ExtractSettings(audio_features="speech_encoder", audio_encoder=str(directory), audio_layer="0")
    whole = _speech_features(settings, signal)
    monkeypatch.setattr(speech_encoder, "WINDOW_S", 1.0)  # 3 windows, the two of the same length batched together
    monkeypatch.setattr(speech_encoder, "BATCH", 2)
    windowed = _speech_features(settings, signal)
    assert windowed.shape == whole.shape
    # Frames away from a window's edges see the same samples: layer 0 (convolutions, the positional
    # convolution of +-8 frames) agrees there.
    inner = np.r_[10:40, 60:90, 110:140]
    np.testing.assert_allclose(windowed[inner], whole[inner], atol=1e-4)


def test_the_cache_key_follows_the_model_files_and_the_layer(models, tmp_path):
    directory = speech_model(tmp_path / "w2v", seed=0)
    base = ExtractSettings(audio_features="speech_encoder", audio_encoder=str(directory))
    key = base.key()
    assert ExtractSettings(audio_features="speech_encoder", audio_encoder=str(directory), audio_layer="1").key() != key
    assert base.key() == key
    speech_model(directory, seed=1)  # the same directory, other weights
    assert base.key() != key
    vision = ExtractSettings(vision_features="image_encoder", vision_encoder=str(models["vit"]))
    assert vision.key() != ExtractSettings(vision_features="image_encoder", vision_encoder=str(models["dinov2"])).key()


@pytest.mark.bad_input
def test_a_directory_that_is_not_a_model_of_the_right_kind_is_refused_in_one_line(models, tmp_path):
    (tmp_path / "empty").mkdir()
    own_code = tmp_path / "own_code"
    speech_model(own_code)
    config = json.loads((own_code / "config.json").read_text())
    (own_code / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "modeling_x.XModel"}}))
    with_py = tmp_path / "with_py"
    speech_model(with_py)
    (with_py / "modeling_x.py").write_text("import os\n")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps(config))
    cases = [
        (dict(audio_encoder=str(tmp_path / "absent")), "no such directory"),
        (dict(audio_encoder=str(tmp_path / "empty")), "no config.json; not a transformers model directory"),
        (dict(audio_encoder=str(own_code)), "asks to run its own code (auto_map in config.json)"),
        (dict(audio_encoder=str(with_py)), "asks to run its own code (modeling_x.py)"),
        (dict(audio_encoder=str(no_weights)), "no weights"),
        (dict(audio_encoder=str(models["vit"])), "a vit model, not a speech encoder"),
        (dict(audio_encoder=str(models["wav2vec2"]), audio_layer="7"), "hidden states 0..2"),
        (dict(audio_encoder=str(models["wav2vec2"]), audio_layer="top"), "give last, mean, a layer number"),
        (dict(audio_encoder=str(models["wav2vec2"]), sample_rate=22050), "takes 16000 Hz audio"),
    ]
    for given, words in cases:
        with pytest.raises(ConfigError) as caught:
            ExtractSettings(audio_features="speech_encoder", **given).validate()
        assert words in str(caught.value) and "\n" not in str(caught.value), (given, str(caught.value))
    with pytest.raises(ConfigError, match="a wav2vec2 model, not an image encoder"):
        ExtractSettings(vision_features="image_encoder", vision_encoder=str(models["wav2vec2"])).validate()
    with pytest.raises(ConfigError, match="a wav2vec2 model, not a text encoder"):
        ExtractSettings(text_features="text_encoder", text_encoder=str(models["wav2vec2"])).validate()


@pytest.fixture(scope="module")
def face_clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("face_clips")
    for i in range(2):
        write_clip(folder / f"c{i}.mp4", seconds=1.2, size=(160, 120), audio=voice(1.2, f0=120 + 60 * i, seed=i), scale=lambda t, i=i: 0.6 + 0.1 * i)
    return folder


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["vit", "dinov2", "clip_vision_model"])
def test_an_image_encoder_reads_the_aligned_face_at_each_sampled_frame(models, face_clips, tmp_path, kind):
    settings = dict(modalities="v", vision_features="image_encoder", vision_encoder=str(models[kind]), video_fps=5.0, progress=False)
    one = msakit.extract(face_clips, tmp_path / "one.pkl", workers=1, **settings)
    assert not one.failures
    vision = pickle.loads(one.output.read_bytes())["test"]["vision"]
    assert vision.shape == (2, 6, 17) and np.all(vision[:, :, 0] == 1)  # 1.2 s at 5 frames/s; present, then 16 features
    assert np.abs(vision[:, :, 1:]).sum(axis=2).min() > 0 and not np.array_equal(vision[0, :, 1:], vision[1, :, 1:])
    described = json.loads(one.sidecar.read_text())["features"]["vision"]
    assert described["feature_set"] == "image_encoder" and described["dim"] == 17 and described["rate_hz"] == 5.0
    assert "32x32" in described["input"] and described["model_sha256"]
    again = msakit.extract(face_clips, tmp_path / "again.pkl", workers=1, **settings)
    assert _digest(again.output) == _digest(one.output)


def test_text_encoder_hidden_states_are_written_beside_the_transcript(tiny_bert_dir, tmp_path):
    from msakit.extract.featuresets import text_encoder

    settings = ExtractSettings(modalities="t", text_features="text_encoder", text_encoder=str(tiny_bert_dir), text_layer="mean").validate()
    first = text_encoder.features(settings, "this movie is great")
    assert first.shape == (6, 32) and first.dtype == np.float32  # [CLS] four words [SEP]
    assert first.tobytes() == text_encoder.features(settings, "this movie is great").tobytes()
    clips = tmp_path / "clips"
    write_clip(clips / "a.mp4", seconds=1.0, size=(160, 120), audio=voice(1.0))
    write_clip(clips / "b.mp4", seconds=1.0, size=(160, 120), audio=voice(1.0, seed=3))
    with open(tmp_path / "m.csv", "w", newline="") as file:
        csv.writer(file).writerows([["path", "text"], [str(clips / "a.mp4"), "this movie is great"], [str(clips / "b.mp4"), "boring"]])
    result = msakit.extract(tmp_path / "m.csv", tmp_path / "t.pkl", modalities="t", text_features="text_encoder",
                            text_encoder=str(tiny_bert_dir), text_layer="mean", progress=False)
    data = pickle.loads(result.output.read_bytes())["test"]
    assert data["raw_text"] == ["this movie is great", "boring"] and list(data["text_lengths"]) == [6, 3]
    assert data["text"].shape == (2, 6, 32) and np.array_equal(data["text"][0], first)
    text = json.loads(result.sidecar.read_text())["features"]["text"]
    assert text["features_key"] == "text" and text["dim"] == 32 and text["layer"] == "mean"


def test_a_run_on_egemaps_and_encoder_features_scores_new_clips_with_its_own_settings_and_refuses_another_set(models, tiny_bert_dir, tmp_path):
    from fastapi.testclient import TestClient

    from msakit.workflows.predict_video import VideoScorer, predict_video
    from msakit.workflows.serve import create_app

    rows = []
    for i in range(8):
        label = 1.5 if i % 2 else -1.5
        write_clip(tmp_path / "clips" / f"clip{i}.mp4", seconds=1.0, size=(160, 120), audio=voice(1.0, f0=200 if label > 0 else 110, seed=i),
                   scale=lambda t, label=label: 0.8 if label > 0 else 0.55)
        rows.append({"path": f"clips/clip{i}.mp4", "label": label, "split": "train" if i < 4 else "valid" if i < 6 else "test",
                     "text": "a great film" if label > 0 else "a dull film", "video_id": f"v{i}"})
    with open(tmp_path / "manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pytest.importorskip("opensmile", reason="eGeMAPS needs audEERING's opensmile package")
    sets = dict(audio_features="egemaps_functionals", vision_features="image_encoder", vision_encoder=str(models["dinov2"]), video_fps=5.0,
                text_features="text_encoder", text_encoder=str(tiny_bert_dir))
    feats = msakit.extract(tmp_path / "manifest.csv", tmp_path / "feats.pkl", workers=1, progress=False, **sets)
    assert not feats.failures
    data = pickle.loads(feats.output.read_bytes())["train"]
    assert data["audio"].shape[1:] == (1, 88) and data["vision"].shape[1:] == (5, 17) and data["text"].shape[2] == 32
    overrides = {"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False}}
    run = msakit.train("self_mm", feats.output, run_dir=tmp_path / "run", overrides=overrides).run_dir
    scorer = VideoScorer(run, device="cpu")
    assert scorer.settings.audio_features == "egemaps_functionals" and scorer.settings.vision_encoder == str(models["dinov2"])
    new = tmp_path / "new.mp4"
    write_clip(new, seconds=1.0, size=(160, 120), audio=voice(1.0, f0=200, seed=11))
    result = predict_video(run, [new], tmp_path / "p.csv", transcripts=["a great film"], progress=False, device="cpu")
    assert not result["failures"] and np.isfinite(result["predictions"][0]["score"])
    with TestClient(create_app(scorer, workers=1)) as client:
        response = client.post("/api/predict", files=[("file", ("new.mp4", new.read_bytes()))], data={"transcript": "a great film"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["score"] == pytest.approx(result["predictions"][0]["score"], abs=1e-5)
    # Features made with another audio set (a speech encoder's): refused, naming both; a run trains on them as they are.
    other = msakit.extract(tmp_path / "manifest.csv", tmp_path / "other.pkl", workers=1, progress=False, modalities="ta",
                           audio_features="speech_encoder", audio_encoder=str(models["wavlm"]), audio_layer="mean")
    assert 48 <= pickle.loads(other.output.read_bytes())["train"]["audio"].shape[1] <= 51
    with pytest.raises(DataError) as caught:
        msakit.evaluate(run, other.output, device="cpu")
    assert "'speech_encoder' differs from the run's 'egemaps_functionals'" in str(caught.value) and "\n" not in str(caught.value)
    trained = msakit.train("self_mm", other.output, run_dir=tmp_path / "run_w", overrides=overrides)
    assert all(np.isfinite(metrics["MAE"]) for metrics in trained.per_seed.values())


@pytest.mark.slow
def test_every_encoder_set_gives_the_same_bytes_with_1_and_2_workers(models, tiny_bert_dir, face_clips, tmp_path):
    """(slow: two worker processes each load torch, transformers and MediaPipe.)"""
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in face_clips.iterdir():
        (folder / clip.name).write_bytes(clip.read_bytes())
    rows = [["path", "text"]] + [[str(folder / name), text] for name, text in (("c0.mp4", "a great film"), ("c1.mp4", "dull"))]
    with open(tmp_path / "m.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    sets = dict(audio_features="speech_encoder", audio_encoder=str(models["hubert"]), audio_layer="1-2", vision_features="image_encoder",
                vision_encoder=str(models["clip_vision_model"]), text_features="text_encoder", text_encoder=str(tiny_bert_dir), progress=False)
    one = msakit.extract(tmp_path / "m.csv", tmp_path / "one.pkl", workers=1, **sets)
    two = msakit.extract(tmp_path / "m.csv", tmp_path / "two.pkl", workers=2, **sets)
    assert not one.failures and _digest(two.output) == _digest(one.output)
