"""Range-checked settings: the ``setting`` field helper and the name rules of valid ranges.

Below both ``msakit.config`` and the models, so a model file declares its config fields with
``setting`` without importing the run configuration (which imports the model registry).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import field
from typing import Any

from msakit.errors import ConfigError


def setting(default: Any, *, min: float | None = None, max: float | None = None, gt: float | None = None,
            lt: float | None = None, choices: tuple | None = None, doc: str = "") -> Any:
    """A config field with its valid range: ``min``/``max`` inclusive, ``gt``/``lt`` exclusive,
    ``choices`` for a closed set of strings. Checked by ``validate_section`` when a config is
    resolved, loaded or rebuilt; fields without these use the name rules of ``RANGE_RULES``."""
    meta = {k: v for k, v in dict(min=min, max=max, gt=gt, lt=lt, choices=choices, doc=doc).items() if v not in (None, "")}
    if isinstance(default, (list, dict, set)):
        raise TypeError("setting(): use an immutable default (a tuple, not a list)")
    return field(default=default, metadata=meta)


# Valid ranges of fields that do not declare their own, by name (first match wins). Every
# float must also be finite. A model's config follows these names, so its fields are checked
# without repeating the rule: *_dim/*_hidden/*_out/*layers/*heads are sizes (>= 1), dropouts
# lie in [0, 1), learning rates are > 0, weight decays and loss weights are >= 0.
RANGE_RULES: tuple[tuple[str, dict[str, float]], ...] = (
    ("*dropout*", {"min": 0.0, "lt": 1.0}),
    ("lr", {"gt": 0.0}),
    ("lr_*", {"gt": 0.0}),
    ("*_lr", {"gt": 0.0}),
    ("weight_decay*", {"min": 0.0}),
    ("*_weight", {"min": 0.0}),
    ("weight", {"min": 0.0}),
    ("*temperature*", {"gt": 0.0}),
    ("*_dim", {"min": 1}),
    ("*_hidden", {"min": 1}),
    ("*_out", {"min": 1}),
    ("*layers", {"min": 1}),
    ("*heads", {"min": 1}),
    ("*_size", {"min": 1}),
    ("*stride*", {"min": 1}),
    ("*rank*", {"min": 1}),
)


def field_range(f: dataclasses.Field) -> dict[str, Any]:
    """The valid range of a config field: its own ``setting`` metadata, else the name rules."""
    own = {k: v for k, v in f.metadata.items() if k in ("min", "max", "gt", "lt", "choices")}
    if own:
        return own
    for pattern, rule in RANGE_RULES:
        if fnmatch.fnmatchcase(f.name, pattern):
            return dict(rule)
    return {}


def describe_range(rule: dict[str, Any]) -> str:
    parts = []
    if "choices" in rule:
        return "one of " + ", ".join(map(str, rule["choices"]))
    if "min" in rule:
        parts.append(f">= {rule['min']}")
    if "gt" in rule:
        parts.append(f"> {rule['gt']}")
    if "max" in rule:
        parts.append(f"<= {rule['max']}")
    if "lt" in rule:
        parts.append(f"< {rule['lt']}")
    return " and ".join(parts) or "any value"


def validate_section(obj: Any, section: str) -> None:
    """Raise ``ConfigError`` naming ``section.key`` for the first value outside its range."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = f"{section}.{f.name}"
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}={value!r}: must be a finite number")
        rule = field_range(f)
        if not rule or value is None or isinstance(value, bool):
            continue
        if "choices" in rule:
            if value not in rule["choices"]:
                raise ConfigError(f"{where}={value!r}: must be {describe_range(rule)}")
            continue
        if not isinstance(value, (int, float)):
            continue
        ok = (("min" not in rule or value >= rule["min"]) and ("max" not in rule or value <= rule["max"])
              and ("gt" not in rule or value > rule["gt"]) and ("lt" not in rule or value < rule["lt"]))
        if not ok:
            doc = f" ({f.metadata['doc']})" if f.metadata.get("doc") else ""
            raise ConfigError(f"{where}={value!r}: must be {describe_range(rule)}{doc}")


__all__ = ["RANGE_RULES", "describe_range", "field_range", "setting", "validate_section"]
