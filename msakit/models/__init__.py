"""Models: one file each, registered by name in ``_registry.py``; importing this package
imports every model file, which registers it."""

from __future__ import annotations

from msakit.models._registry import available_models, get_model_class, register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.models import dma, late_fusion, mmmie, self_mm  # noqa: E402,F401
from msakit.models import mag_bert, misa, mmim  # noqa: E402,F401
from msakit.models import lmf, mult, tfn  # noqa: E402,F401
from msakit.models import almt, cenet, tetfn  # noqa: E402,F401
from msakit.models import confede, dlf, dmd  # noqa: E402,F401
from msakit.models import kuda, lnln  # noqa: E402,F401
from msakit.models import graph_mfn, mctn, mfm, mfn  # noqa: E402,F401
from msakit.models import ef_lstm, lf_dnn, mlf_dnn, mlmf, mtfn, tfr_net  # noqa: E402,F401
from msakit.models import mmml  # noqa: E402,F401

__all__ = ["InputDims", "ModelOutput", "MSAModel", "available_models", "get_model_class", "register_model"]
