"""Workflows: what you can do with msakit, each over the public API and the trainer.

``compare`` (several models over the same seeds), ``robustness`` (missing and corrupted
modalities), ``sweep`` (Optuna search, many workers), ``ablation`` (alignment pair sets).
Nothing in the core imports this package.
"""
