"""The model registry: a name maps to a class; each class carries its config and dataset defaults.

Its own module (as timm's ``_registry.py``), so a model file registers itself without
importing the ``msakit.models`` package that imports every model file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msakit.errors import UnknownNameError

if TYPE_CHECKING:
    from msakit.models.base import MSAModel

_REGISTRY: dict[str, type["MSAModel"]] = {}


def register_model(cls: type["MSAModel"]) -> type["MSAModel"]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def get_model_class(name: str) -> type["MSAModel"]:
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    return _REGISTRY[name]


def available_models() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["available_models", "get_model_class", "register_model"]
