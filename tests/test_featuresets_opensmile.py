"""openSMILE feature sets (eGeMAPSv02, ComParE 2016; low-level descriptors and functionals) on
real clips: the same numbers as openSMILE's own file interface (the configuration read by the
library with its WAV reader and CSV writer, as ``SMILExtract -C <config> -I clip.wav
-lldcsvoutput lld.csv -csvoutput func.csv`` runs it; the ``opensmile`` wheel ships the library and
the configuration files, not the SMILExtract program) on the same 16-bit samples; byte-identical
feature files with 1 and 2 workers."""

from __future__ import annotations

import csv
import hashlib
import pickle
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opensmile", reason="the openSMILE feature sets need audEERING's opensmile package (pip install opensmile)")
for _module in ("av", "mediapipe", "moonshine_voice"):
    pytest.importorskip(_module, reason="extraction needs the video extra")

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"
CLIPS = [MEDIA / "grid" / "bbaf2n.mpg", MEDIA / "speech" / "jfk.flac"]
SETS = {"egemaps": ("eGeMAPSv02", "egemaps/v02/eGeMAPSv02.conf", "standard_data_output_no_lld_de"),
        "compare": ("ComParE_2016", "compare/ComParE_2016.conf", "standard_data_output")}


def _media(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared media clip {path.name} absent (the real clips live outside the repository)")
    return path


def smilextract_csv(config: str, sink: str, wav: Path, out: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """openSMILE's file interface: the package's configuration with its WAV source and CSV sinks."""
    import opensmile
    from opensmile.core.lib import OpenSMILE

    root = Path(opensmile.__file__).parent / "core" / "config"
    files = {"LowLevelDescriptors": out / "lld.csv", "Functionals": out / "func.csv"}
    smile = OpenSMILE()
    smile.initialize(str(root / config), {"source": str(root / "shared/standard_wave_input.conf.inc"), "sink": str(root / f"shared/{sink}.conf.inc"),
                                          "I": str(wav), "lld_csv_output": str(files["LowLevelDescriptors"]),
                                          "func_csv_output": str(files["Functionals"]),
                                          "bufferModeRbConf": str(root / "shared/BufferModeRb.conf.inc"),
                                          "frameModeFunctionalsConf": str(root / "shared/FrameModeFunctionals.conf.inc")}, loglevel=1)
    smile.run()
    smile.free()
    tables = {}
    for level, path in files.items():
        rows = list(csv.reader(path.open(), delimiter=";"))
        tables[level] = (rows[0], np.array([[float(v) for v in row] for row in rows[1:]]))
    return tables


@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.name)
def test_the_sets_give_openSMILEs_own_file_output(clip, tmp_path):
    from msakit.extract.decode import iter_audio
    from msakit.extract.featuresets import _opensmile

    signal = np.concatenate(list(iter_audio(_media(clip), 16000)))
    pcm = _opensmile.quantise(signal)
    wav = tmp_path / "clip.wav"
    with wave.open(str(wav), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16000)
        file.writeframes(pcm.tobytes())
    for name, (feature_set, config, sink) in SETS.items():
        reference = smilextract_csv(config, sink, wav, tmp_path)
        for level, (header, table) in reference.items():
            names = _opensmile.names(feature_set, level)
            ours = _opensmile.process(feature_set, level, signal, 16000)
            expected = table[:, [header.index(n) for n in names]]
            assert ours.shape == expected.shape and ours.dtype == np.float32, (name, level)
            if level == "LowLevelDescriptors":
                assert abs(len(ours) - len(signal) / 160) < 5  # 100 frames/s
                assert np.allclose(np.diff(table[:-1, header.index("frameTime")]), 0.01, atol=1e-6)  # (ComParE repeats the last time)
            # The CSV prints 7 significant digits: the same numbers to that precision.
            np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9, err_msg=f"{name} {level}")


def test_a_folder_extracted_with_egemaps_is_byte_identical_with_1_and_2_workers(tmp_path):
    import msakit
    from msakit.extract.decode import iter_audio
    from msakit.extract.featuresets import _opensmile

    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in (MEDIA / "grid" / "bbaf2n.mpg", MEDIA / "grid" / "brbk7n.mpg", MEDIA / "speech" / "librivox_0870.wav"):
        shutil.copy(_media(clip), folder / clip.name)
    settings = dict(modalities="a", audio_features="egemaps_functionals", progress=False)
    one = msakit.extract(folder, tmp_path / "one.pkl", workers=1, **settings)
    two = msakit.extract(folder, tmp_path / "two.pkl", workers=2, **settings)
    assert not one.failures and len(one.extracted) == 3
    assert hashlib.sha256(one.output.read_bytes()).digest() == hashlib.sha256(two.output.read_bytes()).digest()
    data = pickle.loads(one.output.read_bytes())["test"]
    assert data["audio"].shape == (3, 1, 88) and list(data["audio_lengths"]) == [1, 1, 1]
    i = data["id"].index("bbaf2n")
    direct = _opensmile.process("eGeMAPSv02", "Functionals", np.concatenate(list(iter_audio(folder / "bbaf2n.mpg", 16000))), 16000)
    assert np.array_equal(data["audio"][i], direct)
    import json

    audio = json.loads(one.sidecar.read_text())["features"]["audio"]
    assert audio["feature_set"] == "egemaps_functionals" and audio["dim"] == 88 and audio["rate_hz"] == 0.0
    assert "non-commercial" in audio["licence"] and audio["names"][0].startswith("F0semitone")
    lld = msakit.extract(folder, tmp_path / "lld.pkl", workers=1, modalities="a", audio_features="compare_lld", progress=False)
    shape = pickle.loads(lld.output.read_bytes())["test"]["audio"].shape
    assert shape[2] == 65 and json.loads(lld.sidecar.read_text())["features"]["audio"]["rate_hz"] == 100.0
    shutil.rmtree(tmp_path / "lld.pkl.parts")  # extracted again from the clips, not from the cache
    again = msakit.extract(folder, tmp_path / "lld.pkl", workers=1, modalities="a", audio_features="compare_lld", progress=False, overwrite=True)
    assert hashlib.sha256(again.output.read_bytes()).digest() == hashlib.sha256(lld.output.read_bytes()).digest()


@pytest.mark.parametrize("feature_set", ["egemaps_lld", "compare_lld", "compare_functionals"])
def test_every_opensmile_set_gives_the_same_bytes_with_1_and_2_workers(feature_set, tmp_path):
    import msakit

    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in (MEDIA / "grid" / "bbaf2n.mpg", MEDIA / "speech" / "librivox_0870.wav"):
        shutil.copy(_media(clip), folder / clip.name)
    settings = dict(modalities="a", audio_features=feature_set, progress=False)
    one = msakit.extract(folder, tmp_path / "one.pkl", workers=1, **settings)
    two = msakit.extract(folder, tmp_path / "two.pkl", workers=2, **settings)
    assert not one.failures and len(one.extracted) == 2
    assert one.output.read_bytes() == two.output.read_bytes()


@pytest.mark.bad_input
def test_without_the_package_the_set_is_refused_in_one_line(monkeypatch):
    import importlib.util

    from msakit.errors import ConfigError
    from msakit.extract import ExtractSettings

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "opensmile" else real(name, *a))
    with pytest.raises(ConfigError, match=r"audio_features=compare_lld: needs audEERING's opensmile package: pip install opensmile"):
        ExtractSettings(audio_features="compare_lld").validate()
