"""Vision feature set ``image_encoder``: a local image encoder directory (``transformers``
format: ViT, DeiT, DINOv2, CLIP or its vision tower) on the aligned face crop of each sampled
frame.

- ``vision_encoder``: the model directory; ``preprocessor_config.json`` if present gives the
  input size (``crop_size``, else ``size``) and ``image_mean`` / ``image_std``, else the model
  config's ``image_size`` and mean = std = 0.5.
- ``vision_layer``: ``last`` (default), ``N`` (0 = the patch embeddings), ``mean`` or ``A-B``
  (hidden states averaged); the row is that layer's first token (CLS).
- The face: MediaPipe Face Mesh in tracking mode (as the ``facemesh`` set) gives the outer eye
  corners; the crop is square, ``CROP_IODS`` inter-ocular distances wide, rotated so the eyes
  are level, the point between the eyes at ``EYE_Y`` of its height, resampled bilinearly to the
  model's input size.
- Row per sampled frame: ``present`` (1 when a face was found) then the model's features; a frame
  without a face is all zeros. Crops are encoded in batches of ``BATCH`` frames (in frame
  order, so the batches and the result depend on the clip alone).

Licence: that of the model the user gives (ViT, DINOv2: Apache-2.0; CLIP: MIT); MediaPipe and
``transformers``: Apache-2.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from msakit.extract.featuresets import _local_model

KINDS = {"vit": "ViT", "deit": "DeiT", "dinov2": "DINOv2", "clip": "CLIP", "clip_vision_model": "CLIP vision"}
CROP_IODS = 2.4
EYE_Y = 0.38
BATCH = 16


def _config(settings) -> dict:
    return _local_model.config_of(settings.vision_encoder, "vision_encoder", KINDS, "an image encoder")


def _vision_config(config: dict) -> dict:
    return config.get("vision_config") or config if config.get("model_type") == "clip" else config


def preprocessing(directory: str, config: dict) -> tuple[int, np.ndarray, np.ndarray]:
    """(input side in pixels, mean, std) of the model."""
    path = Path(directory) / "preprocessor_config.json"
    spec = json.loads(path.read_text()) if path.is_file() else {}
    side = None
    for key in ("crop_size", "size"):
        value = spec.get(key)
        if isinstance(value, dict):
            value = value.get("height") or value.get("shortest_edge")
        if value:
            side = int(value)
            break
    side = side or int(_vision_config(config).get("image_size", 224))
    mean = np.asarray(spec.get("image_mean", [0.5, 0.5, 0.5]), np.float32)
    std = np.asarray(spec.get("image_std", [0.5, 0.5, 0.5]), np.float32)
    return side, mean, std


def check(settings) -> None:
    config = _config(settings)
    _local_model.parse_layer(settings.vision_layer, _local_model.layer_count(config), "vision_layer")


def describe(settings) -> dict:
    config = _config(settings)
    span = _local_model.parse_layer(settings.vision_layer, _local_model.layer_count(config), "vision_layer")
    side, _, _ = preprocessing(settings.vision_encoder, config)
    hidden = int(_vision_config(config)["hidden_size"])
    return {"dim": hidden + 1, "rate_hz": settings.video_fps, "names": ["present"] + [f"emb_{i}" for i in range(hidden)],
            "frames": "one row per sampled frame", "input": f"aligned face crop, {side}x{side} pixels ({CROP_IODS} eye distances wide)",
            "no_face": "all features 0 (present = 0)",
            "library": f"mediapipe face mesh (face), transformers {_local_model.version('transformers')}, torch "
                       f"{_local_model.version('torch')}: {KINDS[config['model_type']]} first token",
            "licence": "the model's own (see its directory); mediapipe, transformers: Apache-2.0",
            **_local_model.model_description(settings.vision_encoder, config, settings.vision_layer, span)}


def fingerprint(settings) -> dict:
    return {"model_sha256": _local_model.digest(settings.vision_encoder), "transformers": _local_model.version("transformers"),
            "torch": _local_model.version("torch"), "pillow": _local_model.version("pillow"), "crop": [CROP_IODS, EYE_Y]}


def _load(directory: str):
    config = json.loads((Path(directory) / "config.json").read_text())
    if config.get("model_type") == "clip":
        from transformers import CLIPVisionModel as Model
    else:
        from transformers import AutoModel as Model
    return Model.from_pretrained(directory, local_files_only=True, trust_remote_code=False)


def aligned_crop(rgb: np.ndarray, points: np.ndarray, side: int) -> np.ndarray:
    """The face upright and centred: ``(side, side, 3)`` uint8."""
    from PIL import Image

    from msakit.extract.face import EYE_OUTER_L, EYE_OUTER_R

    left, right = points[EYE_OUTER_L, :2], points[EYE_OUTER_R, :2]
    centre = (left + right) / 2
    iod = max(float(np.linalg.norm(right - left)), 1e-6)
    angle = float(np.arctan2(right[1] - left[1], right[0] - left[0]))
    scale = CROP_IODS * iod / side  # input pixels per output pixel
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    u0, v0 = side / 2, EYE_Y * side
    # PIL maps each output (x, y) to the input (a x + b y + c, d x + e y + f).
    data = (cos, -sin, centre[0] - cos * u0 + sin * v0, sin, cos, centre[1] - sin * u0 - cos * v0)
    image = Image.fromarray(np.ascontiguousarray(rgb, np.uint8))
    return np.asarray(image.transform((side, side), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR))


class Featurizer:
    def __init__(self, settings):
        from msakit.extract.face import FaceFeaturizer

        self.config = _config(settings)
        self.model = _local_model.load(settings.vision_encoder, _load)
        self.span = _local_model.parse_layer(settings.vision_layer, _local_model.layer_count(self.config), "vision_layer")
        self.side, mean, std = preprocessing(settings.vision_encoder, self.config)
        self.mean, self.std = mean[:, None, None], std[:, None, None]
        self.hidden = int(_vision_config(self.config)["hidden_size"])
        self.face = FaceFeaturizer()
        self.rows: list[np.ndarray] = []
        self.pending: list[tuple[int, np.ndarray]] = []  # (row, normalised crop)

    def push(self, rgb: np.ndarray) -> None:
        points = self.face.points(rgb)
        row = np.zeros(self.hidden + 1, np.float32)
        self.rows.append(row)
        if points is None:
            return
        row[0] = 1.0
        crop = aligned_crop(rgb, points, self.side).astype(np.float32).transpose(2, 0, 1) / 255.0
        self.pending.append((len(self.rows) - 1, (crop - self.mean) / self.std))
        if len(self.pending) >= BATCH:
            self._encode()

    def _encode(self) -> None:
        import torch

        if not self.pending:
            return
        batch = torch.from_numpy(np.stack([crop for _, crop in self.pending]).astype(np.float32))
        with torch.inference_mode():
            hidden = self.model(pixel_values=batch, output_hidden_states=True).hidden_states
            features = _local_model.as_float32(_local_model.pick(hidden, self.span)[:, 0])
        for (index, _), values in zip(self.pending, features):
            self.rows[index][1:] = values
        self.pending = []

    def finish(self) -> np.ndarray | None:
        self._encode()
        return np.stack(self.rows) if self.rows else None

    def close(self) -> None:
        self.face.close()


def featurizer(settings) -> Featurizer:
    return Featurizer(settings)
