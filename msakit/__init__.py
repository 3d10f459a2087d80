"""msakit: multimodal sentiment analysis (Self-MM and friends), fast on a laptop CPU.

The public API: ``train``, ``evaluate``, ``predict``, ``load_run``, ``make_synthetic``.
"""

from msakit._version import __version__  # noqa: E402

from msakit.api import TrainSummary, evaluate, load_run, make_synthetic, predict, predict_video, train  # noqa: E402
from msakit import extract  # noqa: E402  (a package that is also callable: msakit.extract(clips, "feats.pkl"))

__all__ = ["TrainSummary", "evaluate", "extract", "load_run", "make_synthetic", "predict", "predict_video", "train", "__version__"]
