"""msakit: multimodal sentiment analysis (Self-MM and friends), fast on a laptop CPU.

The public API: ``train``, ``evaluate``, ``predict``, ``load_run``, ``make_synthetic``.
"""

__version__ = "0.1.0"

from msakit.api import TrainSummary, evaluate, load_run, make_synthetic, predict, train  # noqa: E402

__all__ = ["TrainSummary", "evaluate", "load_run", "make_synthetic", "predict", "train", "__version__"]
