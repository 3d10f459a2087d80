"""The HTTP API's response bodies as pydantic models: what ``/openapi.json`` (and so ``/docs``)
shows an integrator. Keys are stable snake_case names; display labels live in the page only.
Imported only when an app is made (pydantic comes with FastAPI, the ``serve`` extra)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

# Every ``code`` a failed clip or a refused request can carry (new ones may be added).
CLIP_ERROR_CODES = ("unreadable", "corrupt_stream", "no_audio_track", "no_video_track", "no_frames", "no_face", "too_short",
                    "no_speech", "worker_stopped", "internal", "unusable")
WARNING_CODES = ("no_speech", "audio_absent", "vision_absent", "transcript_repaired", "truncated", "no_context")


class ErrorBody(BaseModel):
    """A refused request: one line for a person, a stable code for a program."""

    detail: str = Field(description="what is wrong and what to do, in one line")
    code: str = Field(description="bad_request, bad_multipart, no_clip, empty_file, too_many_clips, too_large, unsupported_media, "
                                  "unauthorized, busy, not_found, method_not_allowed, client_disconnected, internal")


class ClipError(BaseModel):
    code: str = Field(description="one of: " + ", ".join(CLIP_ERROR_CODES))
    message: str = Field(description="the reason in plain words, with what to do")


class ClipWarning(BaseModel):
    code: str = Field(description="one of: " + ", ".join(WARNING_CODES))
    message: str


class Series(BaseModel):
    label: str = Field(description="display label, e.g. 'audio level'")
    unit: str = Field(description="e.g. 'dBFS', 'fraction of frames'")
    rate_hz: float = Field(description="values per second of the clip")
    values: list[Optional[float]]


class Timeline(BaseModel):
    duration_s: float
    series: dict[str, Series] = Field(description="keys: audio_level, voiced (runs that use audio); face_present, mouth_open, smile, "
                                                  "brow_raise, eye_open (runs that use vision); none for a text-only run")
    note: Optional[str] = None


class ClipResult(BaseModel):
    index: int = Field(description="the clip's position in the request (0-based)")
    video: str = Field(description="the clip's file name as sent")
    score: float = Field(description="sentiment on the model's scale (see /api/model 'scale')")
    class_: Literal["negative", "neutral", "positive"] = Field(alias="class")
    unimodal: Optional[dict[str, float]] = Field(None, description="the model's own unimodal heads (text/audio/vision), where it has "
                                                                    "them and the run uses several modalities; not separate scores")
    transcript: str
    transcript_source: Literal["given", "speech recognition", "none"]
    used: list[Literal["text", "audio", "vision"]] = Field(description="the modalities the score rests on")
    warnings: list[ClipWarning] = Field(description="why the score may deserve less trust (e.g. vision absent)")
    timeline: Optional[Timeline] = Field(None, description="with ?timeline=true")


class ClipFailure(BaseModel):
    index: int
    video: str
    error: ClipError


class Recogniser(BaseModel):
    name: str
    package: str
    version: str
    runtime: str


class PredictResponse(BaseModel):
    """Every clip of the request is in ``predictions`` or in ``failures`` (by ``index``)."""

    model: str
    model_title: str
    kind: Literal["mosi", "mosei", "sims"]
    modalities: str = Field(description="the run's modalities: t, a, v")
    speech_recognition: Optional[Recogniser] = None
    predictions: list[ClipResult]
    failures: list[ClipFailure]


class Quality(BaseModel):
    split: str
    acc2: Optional[float] = Field(None, description="a fraction")
    acc2_name: str
    mae: Optional[float] = None
    corr: Optional[float] = None
    samples: Optional[int] = None


class Limits(BaseModel):
    max_mb: float
    max_clips: int
    workers: int
    queue: int


class ModelInfo(BaseModel):
    model: str
    model_title: str
    description: str = Field(description="the run in plain words")
    kind: Literal["mosi", "mosei", "sims"]
    scale: list[float]
    modalities: str
    modalities_used: list[Literal["text", "audio", "vision"]]
    absent_ok: list[Literal["text", "audio", "vision"]] = Field(description="modalities a clip may lack: scored without them, with a warning")
    quality: Optional[Quality] = Field(None, description="as the run recorded it on its evaluation split")
    metrics: Optional[dict[str, float]] = None
    context: dict = Field(description="data.context the run was trained with: k neighbours on each side (0: each clip alone), side "
                                      "both or past, the modalities read with them; send clips of one video with the same video_id")
    extractor: dict
    speech_recognition: Optional[Recogniser] = None
    note: Optional[str] = None
    limits: Limits
    token_required: bool


class Health(BaseModel):
    status: Literal["ok"]
    workers: int
    admitted: int
    capacity: int


def error_responses(*statuses: int) -> dict:
    """The ``responses=`` of a route: each status with its meaning and ``ErrorBody``."""
    meaning = {400: "a malformed request (not multipart, no clip, an empty file, a text field where a file belongs)",
               401: "missing or wrong bearer token", 413: "over --max-mb or --max-clips",
               415: "a file whose content is no audio or video container", 499: "the client disconnected before the result",
               500: "a bug in msakit (code internal): please report it",
               503: "the extraction queue is full: retry after the Retry-After header's seconds"}
    return {s: {"model": ErrorBody, "description": meaning[s]} for s in statuses}
