"""Named feature sets at extraction (msakit.extract.featuresets): chosen per modality on the
command line, in a TOML/JSON config file or through the API; recorded in the sidecar and the cache
key; refused in one line when unknown or misplaced; a run trained on one set refuses features
made with another, naming both."""

from __future__ import annotations

import json

import pytest

from msakit.errors import ConfigError, DataError
from msakit.extract import ExtractSettings, check_compatible, describe
from msakit.extract.pipeline import coerce_settings


def test_the_default_sets_keep_the_former_cache_key_and_description():
    settings = ExtractSettings().validate()
    info = describe(settings)
    assert info["features"]["audio"]["feature_set"] == "descriptors" and info["features"]["audio"]["dim"] == 21
    assert info["features"]["vision"]["feature_set"] == "facemesh" and info["features"]["vision"]["dim"] == 86
    assert info["features"]["audio"]["rate_hz"] == 25.0 and info["features"]["vision"]["rate_hz"] == 10.0
    # The feature-set settings at their defaults stay out of the key: caches made before them stay valid.
    import dataclasses
    import hashlib

    from msakit.extract.asr import MODEL_NAME
    from msakit.extract.pipeline import EXTRACTOR_VERSION, _SET_FIELDS, package_versions

    before = {k: v for k, v in dataclasses.asdict(settings).items() if k not in _SET_FIELDS}
    payload = json.dumps({"v": EXTRACTOR_VERSION, "asr": MODEL_NAME, "versions": package_versions(), **before}, sort_keys=True)
    assert settings.key() == hashlib.sha256(payload.encode()).hexdigest()[:12]


@pytest.mark.bad_input
@pytest.mark.parametrize("given, words", [
    ({"audio_features": "mfcc"}, "no such audio feature set; choose from descriptors, egemaps_lld"),
    ({"vision_features": "openface"}, "no such vision feature set; choose from facemesh, image_encoder"),
    ({"audio_layer": "3"}, "only read by audio_features=speech_encoder"),
    ({"vision_encoder": "/somewhere"}, "only read by vision_features=image_encoder"),
    ({"audio_features": "speech_encoder"}, "needs a local model directory; give --set audio_encoder=DIR"),
])
def test_a_bad_feature_set_choice_is_refused_in_one_line(given, words):
    with pytest.raises(ConfigError) as caught:
        ExtractSettings(**coerce_settings(given)).validate()
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_model_directories_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert coerce_settings({"audio_encoder": "models/w2v"})["audio_encoder"] == str(tmp_path / "models" / "w2v")
    assert coerce_settings({"audio_layer": 6})["audio_layer"] == "6"


def test_a_config_file_names_the_sets_and_the_command_line_overrides_it(tmp_path, monkeypatch):
    import msakit.api
    from msakit import cli

    (tmp_path / "cfg.toml").write_text('[extract]\naudio_features = "egemaps_lld"\nvideo_fps = 5\nvision_encoder = "models/dino"\n')
    (tmp_path / "cfg.json").write_text(json.dumps({"extract": {"audio_features": "compare_functionals", "text_layer": 2}}))
    seen = []

    class Result:
        sidecar = "x"

        def report(self, brief=False):
            return ""

    monkeypatch.setattr(msakit.api, "extract", lambda source, output, **kw: seen.append(kw) or Result())
    cli.main(["extract", str(tmp_path), "-o", str(tmp_path / "o.pkl"), "--config", str(tmp_path / "cfg.toml"), "--set", "extract.video_fps=8",
              "--vision-features", "image_encoder:/models/vit"])
    assert seen[-1]["audio_features"] == "egemaps_lld" and seen[-1]["video_fps"] == 8
    assert seen[-1]["vision_features"] == "image_encoder" and seen[-1]["vision_encoder"] == "/models/vit"  # the option beats the file
    cli.main(["extract", str(tmp_path), "-o", str(tmp_path / "o.pkl"), "--config", str(tmp_path / "cfg.json"), "--audio-features", "egemaps_functionals"])
    assert seen[-1]["audio_features"] == "egemaps_functionals" and seen[-1]["text_layer"] == 2
    from msakit.extract.config_file import read_extract_config

    assert read_extract_config(tmp_path / "cfg.toml")["vision_encoder"] == str((tmp_path / "models" / "dino").resolve())


@pytest.mark.bad_input
def test_a_bad_config_file_is_refused_in_one_line(tmp_path):
    from msakit.extract.config_file import read_extract_config

    (tmp_path / "bad.toml").write_text("[extract\naudio_features = 1\n")
    (tmp_path / "nested.json").write_text(json.dumps({"extract": {"audio_features": ["a", "b"]}}))
    for path, words in ((tmp_path / "bad.toml", "not valid TOML"), (tmp_path / "nested.json", "must be a single value"),
                        (tmp_path / "missing.toml", "no such file")):
        with pytest.raises(ConfigError) as caught:
            read_extract_config(path)
        assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.bad_input
def test_features_of_another_set_are_refused_naming_both():
    trained = {"extractor_version": 2, "settings": {"audio_features": "egemaps_functionals", "modalities": "tav"},
               "features": {"audio": {"dim": 88}, "text": {}}}
    new = {"extractor_version": 2, "settings": {"audio_features": "descriptors", "modalities": "tav"}, "features": {"audio": {"dim": 21}, "text": {}}}
    with pytest.raises(DataError) as caught:
        check_compatible(trained, new, "clips.pkl")
    message = str(caught.value)
    assert "'descriptors'" in message and "'egemaps_functionals'" in message and "--audio-features egemaps_functionals" in message
    # A sidecar from before the feature sets means the defaults.
    old = {"extractor_version": 2, "settings": {"modalities": "tav"}, "features": {"audio": {"dim": 21}}}
    with pytest.raises(DataError, match="'egemaps_functionals' differs from the run's 'descriptors'"):
        check_compatible(old, {**new, "settings": {"audio_features": "egemaps_functionals", "modalities": "tav"}}, "x")
