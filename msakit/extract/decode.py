"""Decoding with PyAV (which carries the ffmpeg libraries): frames and audio as streams.

Nothing here holds a whole file: ``iter_frames`` yields RGB frames resampled to a fixed rate
(one at a time, downscaled so the longer side is at most ``max_side``), ``iter_audio`` yields
mono float32 chunks at a fixed sample rate. Memory per clip is therefore bounded by the
consumers (the feature rows they keep), not by the file's length.

Every decoding failure becomes a ``ClipError`` with a one-line reason; the pipeline records it
for that clip and goes on with the others.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np


class ClipError(Exception):
    """A clip that cannot be used; ``str(error)`` is the one-line reason shown in the report and
    ``code`` a stable machine-readable name for it (``unreadable``, ``no_audio_track``,
    ``no_video_track``, ``corrupt_stream``, ``too_short``, ``no_frames``, ``no_face``)."""

    def __init__(self, message: str, code: str = "unusable"):
        super().__init__(message)
        self.code = code

    def __reduce__(self):  # keeps the code across processes
        return (type(self), (str(self), self.code))


@dataclass
class ClipInfo:
    duration_s: float | None
    has_video: bool
    has_audio: bool


def _open(path: Path):
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise ClipError(f"corrupt, truncated or unreadable file ({_short(exc)})", "unreadable") from None
    except OSError as exc:
        raise ClipError(f"cannot open ({_short(exc)})", "unreadable") from None


def _short(exc: Exception) -> str:
    """The library's reason, without an errno in brackets or the (server-side) file path."""
    reason = getattr(exc, "strerror", None)
    text = " ".join(str(reason if reason else exc).split())
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    filename = getattr(exc, "filename", None)
    if filename:
        text = text.replace(f": {filename!r}", "").replace(f": '{filename}'", "").replace(str(filename), "the file")
    text = text[:1].lower() + text[1:]
    return text if len(text) <= 120 else text[:117] + "..."


def probe(path: str | Path) -> ClipInfo:
    with _open(Path(path)) as container:
        duration = container.duration / 1e6 if container.duration else None
        return ClipInfo(duration, bool(container.streams.video), bool(container.streams.audio))


def iter_frames(path: str | Path, fps: float, max_side: int = 640) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_s, rgb uint8 (H, W, 3))`` at ``fps`` frames per second of video time.

    Frames are picked by presentation time: the first frame at or after each tick ``k / fps``
    (a source slower than ``fps`` gives each of its frames once). Decoding runs in ffmpeg's
    own threads; only picked frames are converted.
    """
    import av

    with _open(Path(path)) as container:
        if not container.streams.video:
            raise ClipError("no video track", "no_video_track")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = min(1.0, max_side / max(width, height, 1))
        size = (max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2))
        next_tick, period, first = 0.0, 1.0 / fps, None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * (frame.time_base or stream.time_base or Fraction(1, 1)))
                first = t if first is None else first
                t -= first
                if t + 1e-6 < next_tick:
                    continue
                next_tick = (int(t * fps + 1e-6) + 1) * period
                yield t, frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
        except av.FFmpegError as exc:
            raise ClipError(f"video stream is corrupt or truncated ({_short(exc)})", "corrupt_stream") from None


def iter_audio(path: str | Path, sample_rate: int = 16000, chunk_s: float = 10.0, channel: str = "mix") -> Iterator[np.ndarray]:
    """Yield mono float32 chunks (about ``chunk_s`` seconds each) resampled to ``sample_rate``.

    ``channel``: ``mix`` (the downmix of every channel), ``left`` or ``right`` (the first or
    second channel of a stereo track; a mono track has only one, which is used for either).
    """
    import av

    if channel not in ("mix", "left", "right"):
        raise ValueError(f"channel {channel!r}: use mix, left or right")
    with _open(Path(path)) as container:
        if not container.streams.audio:
            raise ClipError("no audio track", "no_audio_track")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        pick = None if channel == "mix" or channels < 2 else (0 if channel == "left" else 1)
        layout = "mono" if pick is None else "stereo"
        resampler = av.AudioResampler(format="fltp" if pick is not None else "flt", layout=layout, rate=sample_rate)
        pending: list[np.ndarray] = []
        held, target = 0, int(chunk_s * sample_rate)

        def samples(out) -> np.ndarray:
            array = out.to_ndarray()
            return (array[pick] if pick is not None else array.reshape(-1)).astype(np.float32, copy=False)

        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples (timestamps of odd files jump)
                for out in resampler.resample(frame):
                    pending.append(samples(out))
                    held += pending[-1].size
                if held >= target:
                    yield np.concatenate(pending).astype(np.float32, copy=False)
                    pending, held = [], 0
            for out in resampler.resample(None):
                pending.append(samples(out))
        except av.FFmpegError as exc:
            raise ClipError(f"audio stream is corrupt or truncated ({_short(exc)})", "corrupt_stream") from None
        if pending:
            yield np.concatenate(pending).astype(np.float32, copy=False)
