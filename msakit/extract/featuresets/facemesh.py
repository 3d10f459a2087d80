"""Vision feature set ``facemesh`` (the default): MediaPipe Face Mesh measures (presence, position,
head pose, mouth, brows, eyes) and 36 normalised landmarks per sampled frame; see
``msakit.extract.face``. The models ship in the ``mediapipe`` wheel (Apache-2.0)."""

from __future__ import annotations

import numpy as np


def check(settings) -> None:
    pass


def describe(settings) -> dict:
    from msakit.extract import face

    return {"dim": len(face.FEATURE_NAMES), "rate_hz": settings.video_fps, "names": face.FEATURE_NAMES, "units": face.UNITS,
            "library": "mediapipe face mesh (468 landmarks), tracking mode", "no_face": "all features 0 (present = 0)",
            "licence": "Apache-2.0 (mediapipe)"}


def fingerprint(settings) -> dict:
    return {}


class Featurizer:
    """One row per pushed frame; ``finish`` stacks them."""

    def __init__(self, settings):
        from msakit.extract.face import FaceFeaturizer

        self.face = FaceFeaturizer()
        self.rows: list[np.ndarray] = []

    def push(self, rgb: np.ndarray) -> None:
        self.rows.append(self.face(rgb))

    def finish(self) -> np.ndarray | None:
        return np.stack(self.rows) if self.rows else None

    def close(self) -> None:
        self.face.close()


def featurizer(settings) -> Featurizer:
    return Featurizer(settings)
