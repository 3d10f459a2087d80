"""Per-frame face features from MediaPipe Face Mesh (468 landmarks; the face detector and
landmark models ship inside the ``mediapipe==0.10.14`` wheel; Apache-2.0).

The mesh runs in tracking mode (detect, then follow the face from frame to frame) on frames
sampled at a fixed rate. From the landmarks of the one face it keeps:

===================  ===========================================================================
present              1 when a face was found in the frame (every feature is 0 when not)
face_x, face_y       centre between the outer eye corners, fraction of frame width / height
face_scale           inter-ocular distance (outer eye corners) / frame width
yaw, pitch, roll     head pose in radians, approximate: from the eye line and the forehead-chin
                     line of the 3-D mesh (roll: in-image tilt of the eye line)
mouth_open           inner-lip gap / inter-ocular distance (IOD)
mouth_width          mouth-corner distance / IOD (smile width)
smile                height of the mouth corners above the inner-lip centre / IOD (upright face)
brow_raise_l/_r      brow-centre to upper-eyelid distance / IOD
eye_open_l/_r        eyelid gap / eye width
lm_<i>_x, lm_<i>_y   36 landmarks (eyes, brows, nose, lips, jaw) centred between the outer eye
                     corners, rotated upright (roll removed) and divided by the IOD
===================  ===========================================================================
"""

from __future__ import annotations

import numpy as np

# Landmark indices of the canonical MediaPipe face mesh.
EYE_OUTER_L, EYE_INNER_L, EYE_OUTER_R, EYE_INNER_R = 33, 133, 263, 362
LID_UP_L, LID_DOWN_L, LID_UP_R, LID_DOWN_R = 159, 145, 386, 374
MOUTH_L, MOUTH_R, LIP_IN_UP, LIP_IN_DOWN = 61, 291, 13, 14
BROW_L, BROW_R, FOREHEAD, CHIN = 105, 334, 10, 152
KEY_LANDMARKS = [
    33, 133, 159, 145, 263, 362, 386, 374,  # eyes
    70, 105, 107, 300, 334, 336,  # brows
    1, 4, 168, 98, 327,  # nose
    61, 291, 0, 17, 13, 14, 78, 308, 37, 267, 84, 314,  # lips
    10, 152, 234, 454, 172, 397,  # face outline
][:36]
MEASURES = ["present", "face_x", "face_y", "face_scale", "yaw", "pitch", "roll", "mouth_open", "mouth_width", "smile",
            "brow_raise_l", "brow_raise_r", "eye_open_l", "eye_open_r"]
FEATURE_NAMES = MEASURES + [f"lm_{i}_{axis}" for i in KEY_LANDMARKS for axis in ("x", "y")]
UNITS = {"present": "0/1", "face_x": "frame width", "face_y": "frame height", "face_scale": "frame width", "yaw": "rad",
         "pitch": "rad", "roll": "rad", **{m: "ratio" for m in MEASURES[7:]}, **{n: "IOD" for n in FEATURE_NAMES[len(MEASURES):]}}


class FaceFeaturizer:
    def __init__(self, min_detection_confidence: float = 0.5):
        import os
        import warnings

        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ start-up chatter
        warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
        import mediapipe as mp

        self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                                                    min_detection_confidence=min_detection_confidence,
                                                    min_tracking_confidence=0.5)

    def close(self) -> None:
        self.mesh.close()

    def points(self, rgb: np.ndarray) -> np.ndarray | None:
        """The one face's ``(468, 3)`` landmarks in pixels (z scaled like x), or None."""
        result = self.mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        height, width = rgb.shape[:2]
        return landmark_points(result.multi_face_landmarks[0], width, height)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        points = self.points(rgb)
        if points is None:
            return np.zeros(len(FEATURE_NAMES), np.float32)
        height, width = rgb.shape[:2]
        return face_features(points, width, height)


# One serialised NormalizedLandmark holding x, y, z only: field tag, length 15, then the three
# float32 fields with their tags (1, 2, 3).
_LANDMARK = np.dtype([("tag", "u1"), ("size", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"), ("tz", "u1"), ("z", "<f4")])
_TAGS = {"tag": 0x0A, "size": 15, "tx": 0x0D, "ty": 0x15, "tz": 0x1D}


def landmark_points(landmarks, width: int, height: int) -> np.ndarray:
    """``(n, 3)`` float64 pixels (x * width, y * height, z * width) of a NormalizedLandmarkList,
    read from its serialised bytes in one step (reading 468 protobuf messages field by field took
    0.6 ms a frame, a tenth of the face mesh); the same values as field by field, which is
    what any other layout of the message (visibility or presence set) falls back to."""
    data = landmarks.SerializeToString()
    if len(data) == len(landmarks.landmark) * _LANDMARK.itemsize:
        rows = np.frombuffer(data, _LANDMARK)
        if all(np.all(rows[name] == value) for name, value in _TAGS.items()):
            return np.stack([rows["x"].astype(np.float64) * width, rows["y"].astype(np.float64) * height,
                             rows["z"].astype(np.float64) * width], axis=1)
    return np.array([(p.x * width, p.y * height, p.z * width) for p in landmarks.landmark], np.float64)


def face_features(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Features of one face from its ``(468, 3)`` landmarks in pixels (z scaled like x)."""
    p = points
    eye_l, eye_r = p[EYE_OUTER_L], p[EYE_OUTER_R]
    centre = (eye_l + eye_r) / 2
    iod = max(float(np.linalg.norm(eye_r[:2] - eye_l[:2])), 1e-6)
    x_axis = (eye_r - eye_l) / max(np.linalg.norm(eye_r - eye_l), 1e-9)
    y_axis = p[CHIN] - p[FOREHEAD]
    y_axis = y_axis - x_axis * (y_axis @ x_axis)
    y_axis /= max(np.linalg.norm(y_axis), 1e-9)
    roll = float(np.arctan2(x_axis[1], x_axis[0]))
    yaw = float(np.arcsin(np.clip(x_axis[2], -1, 1)))
    pitch = float(np.arcsin(np.clip(y_axis[2], -1, 1)))
    cos, sin = np.cos(-roll), np.sin(-roll)
    upright = ((p[:, :2] - centre[:2]) @ np.array([[cos, sin], [-sin, cos]])) / iod  # rotate by -roll

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(p[a, :2] - p[b, :2]))

    lip_centre_y = (upright[LIP_IN_UP, 1] + upright[LIP_IN_DOWN, 1]) / 2
    measures = [
        1.0, centre[0] / width, centre[1] / height, iod / width, yaw, pitch, roll,
        dist(LIP_IN_UP, LIP_IN_DOWN) / iod, dist(MOUTH_L, MOUTH_R) / iod,
        lip_centre_y - (upright[MOUTH_L, 1] + upright[MOUTH_R, 1]) / 2,
        dist(BROW_L, LID_UP_L) / iod, dist(BROW_R, LID_UP_R) / iod,
        dist(LID_UP_L, LID_DOWN_L) / max(dist(EYE_OUTER_L, EYE_INNER_L), 1e-6),
        dist(LID_UP_R, LID_DOWN_R) / max(dist(EYE_OUTER_R, EYE_INNER_R), 1e-6),
    ]
    return np.concatenate([np.asarray(measures), upright[KEY_LANDMARKS].reshape(-1)]).astype(np.float32)
