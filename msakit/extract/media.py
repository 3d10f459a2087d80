"""Generated test media: a real face photograph moved and scaled over time, muxed with a sound
track by PyAV. Used by the tests and the benchmarks (no downloads: the photograph is
scikit-image's ``data.astronaut()``, public domain, NASA).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

# The astronaut's face within the 512x512 photograph (pixels: x0, y0, x1, y1), with margin.
_FACE_BOX = (120, 20, 340, 260)


def face_photo() -> np.ndarray:
    """A crop of ``skimage.data.astronaut()`` around the face (uint8 RGB, 240x220)."""
    from skimage import data

    x0, y0, x1, y1 = _FACE_BOX
    return np.ascontiguousarray(data.astronaut()[y0:y1, x0:x1])


def render_frame(photo: np.ndarray | None, size: tuple[int, int], scale: float, centre: tuple[float, float],
                 background: int = 90, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A ``size`` = (width, height) RGB frame: grey background, ``photo`` resized by ``scale``
    (relative to the frame height) and centred at ``centre`` (fractions of width, height)."""
    from PIL import Image

    width, height = size
    frame = np.full((height, width, 3), background, np.uint8)
    if photo is None:
        return frame
    target_h = max(8, int(round(height * scale)))
    target_w = max(8, int(round(photo.shape[1] * target_h / photo.shape[0])))
    image = photo if transform is None else transform(photo)
    resized = np.asarray(Image.fromarray(image).resize((target_w, target_h), Image.BILINEAR))
    cx, cy = int(centre[0] * width), int(centre[1] * height)
    x0, y0 = cx - target_w // 2, cy - target_h // 2
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + target_w), min(height, y0 + target_h)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = resized[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    return frame


def voice(seconds: float, sample_rate: int = 16000, f0: float = 140.0, loudness: float = 0.2, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-like sound: harmonics of ``f0`` with a 4 Hz amplitude envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wobble = f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(wobble) / sample_rate
    sound = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t - np.pi / 2)
    return (loudness * sound / 2.6 * envelope + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


def write_clip(path: str | Path, *, seconds: float = 2.0, fps: int = 25, size: tuple[int, int] = (320, 240), face: bool = True,
               scale: Callable[[float], float] = lambda t: 0.8, centre: Callable[[float], tuple[float, float]] = lambda t: (0.5, 0.5),
               audio: np.ndarray | None = None, sample_rate: int = 16000,
               transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """Write an MP4 (MPEG-4 part 2 video, AAC audio when ``audio`` is given) of the face photo
    moving as ``scale(t)``/``centre(t)`` prescribe (``t`` in seconds)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    photo = face_photo() if face else None
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.bit_rate = 800_000
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for i in range(max(1, int(round(seconds * fps)))):
            t = i / fps
            frame = av.VideoFrame.from_ndarray(render_frame(photo, size, scale(t), centre(t), transform=transform), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            step = 1024
            for start in range(0, len(audio), step):
                chunk = audio[start : start + step].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


def write_labelled_clips(folder: str | Path, n_clips: int = 40, *, seed: int = 0, seconds: float = 1.0,
                         size: tuple[int, int] = (160, 120), overwrite: bool = False) -> Path:
    """A tiny labelled clip set for trying the whole path (``msakit synth FOLDER --clips N``):
    ``n_clips`` short MP4s in ``folder`` and ``folder/manifest.csv`` (``path,label,text,video_id``).

    Each clip's sentiment label ``y`` (MOSI range, [-3, 3]) is planted in all three modalities,
    so a model has something to learn from each and a missing one costs something: the
    transcript says it in words (the synthetic dataset's sentences: "the film was really good"),
    the voice's pitch is 140 + 20*y Hz and its level rises with ``y``, and the face (the
    astronaut photograph) is larger in the frame the higher ``y`` is (scale 0.7 + 0.05*y of the
    frame height), breathing slightly over the clip. Clips come two per video (``video_id``), so
    ``msakit extract --split-fractions`` keeps a video's clips together. The same arguments give
    the same bytes. An existing manifest or clip is kept unless ``overwrite``.
    """
    import csv

    from msakit.data.synthetic import _sentence
    from msakit.errors import ConfigError

    if isinstance(n_clips, bool) or not isinstance(n_clips, int) or n_clips < 2:
        raise ConfigError(f"--clips {n_clips!r}: give a whole number of clips, at least 2")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: exists and is not a folder; give a new folder for the clips")
    manifest = folder / "manifest.csv"
    names = [f"clip_{i:03d}.mp4" for i in range(n_clips)]
    existing = [p for p in [manifest, *(folder / n for n in names)] if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]}: exists; pass --overwrite to replace the clip set, or give a new folder")
    rng = np.random.default_rng(seed)
    labels = np.round(rng.uniform(-3, 3, n_clips), 1)
    rows = []
    for i, (name, y) in enumerate(zip(names, labels)):
        y = float(y)
        write_clip(folder / name, seconds=seconds, size=size, audio=voice(seconds, f0=140 + 20 * y, loudness=0.2 + 0.03 * y, seed=seed * 100003 + i),
                   scale=lambda t, y=y: 0.7 + 0.05 * y + 0.02 * np.sin(2 * np.pi * t))
        rows.append({"path": name, "label": f"{y:.1f}", "text": _sentence(y, rng), "video_id": f"video_{i // 2:03d}"})
    with open(manifest, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["path", "label", "text", "video_id"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
