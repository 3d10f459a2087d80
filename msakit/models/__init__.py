"""Model registry: a name maps to a class; each class carries its config and dataset defaults."""

from __future__ import annotations

from msakit.errors import UnknownNameError
from msakit.models.base import InputDims, ModelOutput, MSAModel

_REGISTRY: dict[str, type[MSAModel]] = {}


def register_model(cls: type[MSAModel]) -> type[MSAModel]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def get_model_class(name: str) -> type[MSAModel]:
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    return _REGISTRY[name]


def available_models() -> list[str]:
    return sorted(_REGISTRY)


# Importing a model file registers it.
from msakit.models import dma, late_fusion, mmmie, self_mm  # noqa: E402,F401
from msakit.models import mag_bert, misa, mmim  # noqa: E402,F401
from msakit.models import lmf, mult, tfn  # noqa: E402,F401

__all__ = ["InputDims", "ModelOutput", "MSAModel", "available_models", "get_model_class", "register_model"]
