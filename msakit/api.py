"""The public Python API: a thin facade over the packages; the CLI is a thin layer over it.

Training and using runs live in ``msakit.training.runs``, extraction in ``msakit.extract``,
the workflows (compare, robustness, sweep, ablation, text-only comparison, video prediction)
in ``msakit.workflows``.
"""

from __future__ import annotations

from msakit.config import resolve_config  # noqa: F401  (tests patch it here)
from msakit.data.synthetic import make_synthetic
from msakit.extract.pipeline import extract_features as extract
from msakit.training.runs import (TrainSummary, check_run_dir, check_seeds, default_run_dir, evaluate, fit_defaults_to_data, load_run,
                                  predict, seed_dirs, train)
from msakit.workflows.predict_video import predict_video, sentiment_class
from msakit.workflows.text_only import compare_text_only, side_by_side, text_only_overrides

__all__ = ["TrainSummary", "check_run_dir", "check_seeds", "compare_text_only", "default_run_dir", "evaluate", "extract",
           "fit_defaults_to_data", "load_run", "make_synthetic", "predict", "predict_video", "seed_dirs", "sentiment_class",
           "side_by_side", "text_only_overrides", "train"]
