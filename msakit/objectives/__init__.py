"""Training objectives: small modules, each stating its formula.

An objective is called as ``objective(output, batch, epoch) -> {name: loss}``; the trainer
sums every term. It may define ``after_step(output, batch, epoch)``, which the trainer calls
after ``backward()`` (ULGM updates its labels, memory and centres there).
"""

from msakit.objectives.regression import RegressionL1, RegressionMSE
from msakit.objectives.ulgm import ULGM

__all__ = ["RegressionL1", "RegressionMSE", "ULGM"]
