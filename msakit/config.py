"""Typed run configuration: plain dataclasses with defaults, per-dataset values, overrides.

Resolution order, lowest to highest priority: the dataclass defaults, the model's
per-dataset defaults (``DATASET_DEFAULTS`` in the model's file), then the user's overrides
(``--set model.post_text_dim=64`` on the command line, or a dict from Python). The resolved
config is saved with every run, so a run can always be rebuilt from its directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from msakit.errors import ConfigError, UnknownNameError
from msakit.settings import RANGE_RULES, describe_range, field_range, setting, validate_section  # noqa: F401  (re-exported)

DATASET_KINDS = ("mosi", "mosei", "sims")
SECTIONS = ("model", "data", "train", "alignment")


@dataclass
class DataConfig:
    path: str = "synthetic"  # MMSA pickle, text-table directory, or "synthetic"
    kind: str = setting("mosi", choices=DATASET_KINDS, doc="label range, metrics and defaults")
    modalities: tuple[str, ...] | None = None  # None = every modality the data has
    max_text_tokens: int = setting(128, min=2, doc="longer transcripts are truncated when re-tokenized")
    # z-score audio/vision per column with training-split statistics (msakit/data/standardize.py)
    standardize: bool = True
    standardize_clip: float = setting(10.0, gt=0.0, doc="z-scores beyond ±clip are clipped")
    # True: a sample whose audio or vision is all zeros (no face found, no voice) is that modality
    # absent: left out of the standardisation statistics and kept all zero (not the constant
    # vector −mean/std), and marked absent for ULGM (model.ulgm_skip_absent) like a withheld one.
    empty_as_absent: bool = False
    # Each utterance read with the K previous and K next utterances of its video (same split only;
    # msakit/data/context.py): the text encoder gets them after the scored utterance. 0: off.
    context: int = setting(0, min=0, doc="neighbouring utterances of the same video on each side given to the text encoder (0: off)")
    context_side: str = setting("both", choices=("both", "past"), doc="both: previous and next utterances; past: previous only (causal)")
    # Which modalities are read with their neighbours: text as above; audio/vision get the
    # neighbours' mean utterance vector as extra columns on every frame (the width doubles).
    context_modalities: str = setting("t", doc="modalities read with their neighbours when data.context > 0: t, a, v or a list (t,a,v)")
    # How the neighbours are read: join (text: the neighbours' transcripts after the scored one;
    # audio/vision: the neighbours' mean) or lstm (bc-LSTM style: a bidirectional LSTM over the
    # window's utterance vectors gives each utterance a context vector; msakit/encoders/context.py).
    context_encoder: str = setting("join", choices=("join", "lstm"), doc="join: neighbours joined to the transcript, their mean beside the frames; lstm: a bidirectional LSTM over the window's utterance vectors (bc-LSTM)")
    context_hidden: int = setting(64, min=1, doc="with data.context_encoder=lstm: the LSTM's hidden size in each direction")


@dataclass
class TrainConfig:
    batch_size: int = setting(16, min=1)
    eval_batch_size: int = setting(64, min=1)
    grad_accumulation: int = setting(4, min=1, doc="one optimiser step every N batches (Self-MM's update_epochs)")
    max_epochs: int = setting(30, min=1)
    early_stop: int = setting(8, min=1, doc="epochs without a better validation MAE before stopping")
    seed: int = setting(1111, min=0, max=2**63 - 1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int = setting(0, min=0, doc="CPU threads for torch; 0 keeps torch's default")
    precision: str = setting("auto", choices=("auto", "fp32", "bf16", "fp16"),
                             doc="auto: bf16 (or fp16 with a loss scaler) on CUDA, fp32 on CPU")
    progress: bool = True
    # Robust training: per-modality probability that a training sample has that modality absent
    # in an epoch, e.g. "a:0.3,v:0.3" (or a dict from Python); drawn from (seed, epoch) in the
    # data path, for any model. "" = off. See msakit/data/corruption.py.
    modality_dropout: str = ""
    # What chooses the epochs (and fusion=auto's candidate): "valid" (the validation split), or
    # "kfold:K": K folds of the training split's videos, each once the validation of a run on the
    # others; the epoch counts with the lowest mean fold MAE are then trained on the whole training
    # split, and the validation split only reports (msakit/training/selection.py).
    select: str = setting("valid", doc="valid: early stopping (and fusion=auto's choice) on the validation split; "
                                       "kfold:K: on K video-grouped folds of the training split, then one run on all of it")


@dataclass
class AlignmentConfig:
    """Deep modal alignment, for any model that exposes per-modality features."""

    pairs: str = "none"  # "a-v", "t-a,t-v", "all", "none"; per-pair weights as "a-v:0.5"
    weight: float = setting(0.1, min=0.0, doc="λ for pairs given without their own weight")
    align_dim: int = setting(0, min=0, doc="> 0: the feature size of every aligned modality (sets the post dims)")


@dataclass
class RunConfig:
    model: str
    model_config: Any  # the model's own config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)

    def validate(self) -> "RunConfig":
        """Check every field against its valid range (``setting``/``RANGE_RULES``), then the
        model config's own cross-field checks (a ``validate()`` method, if it has one)."""
        validate_section(self.model_config, "model")
        validate_section(self.data, "data")
        validate_section(self.train, "train")
        validate_section(self.alignment, "alignment")
        from msakit.data.corruption import format_modality_dropout

        self.train.modality_dropout = format_modality_dropout(self.train.modality_dropout)  # checks it; canonical form
        from msakit.data.folds import parse_select

        parse_select(self.train.select)
        if hasattr(self.model_config, "validate"):
            self.model_config.validate()
        return self

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_config": dataclasses.asdict(self.model_config),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "alignment": dataclasses.asdict(self.alignment),
        }


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert ``value`` (often a string from the command line) to the field's declared type."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | {"Any": Any})  # dataclass string annotations
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: cannot read {value!r} as {annotation}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("+", ",").split(",") if v.strip()]
        return tuple(_coerce(v, args[0], where) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, dict):  # e.g. train.modality_dropout={"a": 0.3} from Python
            return ",".join(f"{k}:{v}" for k, v in value.items())
        return str(value)
    return value


def apply_overrides(obj: Any, overrides: dict[str, Any], section: str) -> Any:
    """Return a copy of dataclass ``obj`` with ``overrides`` applied, each type-checked."""
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise UnknownNameError(
                f"unknown setting {section}.{key}; valid {section} settings: {', '.join(sorted(names))}"
            )
        changes[key] = _coerce(value, names[key].type, f"{section}.{key}")
    return dataclasses.replace(obj, **changes)


def parse_set_options(items: list[str] | None) -> dict[str, dict[str, str]]:
    """``["model.post_text_dim=64", "train.seed=2"]`` -> ``{"model": {...}, "train": {...}}``."""
    sections: dict[str, dict[str, str]] = {name: {} for name in SECTIONS}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. model.post_text_dim=64")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        if section not in sections:
            raise ConfigError(f"--set {item!r}: section must be one of {', '.join(sections)}")
        sections[section][name] = value
    return sections


def resolve_config(
    model: str,
    *,
    kind: str = "mosi",
    data_path: str = "synthetic",
    overrides: dict[str, dict[str, Any]] | None = None,
) -> RunConfig:
    """Build the full config of a run: defaults -> per-dataset defaults -> overrides."""
    from msakit.models import get_model_class

    if kind not in DATASET_KINDS:
        raise ConfigError(f"kind={kind!r}: must be one of {', '.join(DATASET_KINDS)}")
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    unknown = set(overrides) - set(SECTIONS)
    if unknown:
        raise UnknownNameError(f"overrides: unknown sections {sorted(unknown)}; use {', '.join(SECTIONS)}")
    model_class = get_model_class(model)
    dataset_defaults = model_class.dataset_defaults(kind)
    model_config = apply_overrides(model_class.config_class(), dataset_defaults.get("model", {}), "model")
    model_config = apply_overrides(model_config, overrides.get("model", {}), "model")
    train = apply_overrides(TrainConfig(), dataset_defaults.get("train", {}), "train")
    train = apply_overrides(train, overrides.get("train", {}), "train")
    data = apply_overrides(DataConfig(path=data_path, kind=kind), overrides.get("data", {}), "data")
    if data.kind != kind:
        raise ConfigError("set the dataset kind with the kind argument (--kind), not data.kind")
    alignment = apply_overrides(AlignmentConfig(), dataset_defaults.get("alignment", {}), "alignment")
    alignment = apply_overrides(alignment, overrides.get("alignment", {}), "alignment")
    validate_section(alignment, "alignment")  # before the pair set is read with its weight
    model_config = apply_align_dim(model_class, model_config, alignment, explicit=overrides.get("model", {}))
    return RunConfig(model=model, model_config=model_config, data=data, train=train, alignment=alignment).validate()


def apply_align_dim(model_class, model_config: Any, alignment: AlignmentConfig, explicit: dict[str, Any] | None = None) -> Any:
    """Give every aligned modality's feature the size ``align_dim`` via the model's own fields.

    A size the user set explicitly (``explicit``, the model overrides) to another value is an
    error, not silently replaced."""
    from msakit.objectives.alignment import parse_pairs

    pairs = parse_pairs(alignment.pairs, alignment.weight)  # validates the pair set early
    if alignment.align_dim <= 0:
        return model_config
    fields = getattr(model_class, "FEATURE_DIM_FIELDS", {})
    changes = {}
    for s in sorted({s for i, j, _ in pairs for s in (i, j)}):
        if s not in fields:
            raise ConfigError(
                f"alignment.align_dim: model {model_class.name!r} declares no feature-size setting for {s!r} "
                f"(it has {fields or 'none'}); align modalities it exposes, or set their sizes yourself"
            )
        field = fields[s]
        if field in (explicit or {}) and explicit[field] != alignment.align_dim:
            raise ConfigError(
                f"model.{field}={explicit[field]} conflicts with alignment.align_dim={alignment.align_dim}, which sizes "
                f"every aligned feature (here {s!r}); set alignment.align_dim={explicit[field]}, or "
                "alignment.align_dim=0 to size the aligned features yourself"
            )
        changes[field] = alignment.align_dim
    return dataclasses.replace(model_config, **changes)


def config_from_dict(payload: dict) -> RunConfig:
    """Rebuild a RunConfig saved by ``RunConfig.to_dict`` (e.g. a run's config.json)."""
    from msakit.models import get_model_class

    model_class = get_model_class(payload["model"])
    return RunConfig(
        model=payload["model"],
        model_config=apply_overrides(model_class.config_class(), {**getattr(model_class, "LEGACY_DEFAULTS", {}), **payload["model_config"]}, "model"),
        data=apply_overrides(DataConfig(), {"standardize": False, **payload["data"]}, "data"),  # runs before standardisation
        train=apply_overrides(TrainConfig(), payload["train"], "train"),
        alignment=apply_overrides(AlignmentConfig(), payload.get("alignment", {}), "alignment"),
    ).validate()


def fit_defaults_to_data(config: RunConfig, modalities, overrides: dict | None = None, quiet: bool = False) -> RunConfig:
    """The one place a model's defaults are fitted to the data: defaults that name a modality
    the run lacks are dropped, with a note (the flagship's default a-v alignment pair on a
    text-only table, so it trains Self-MM on text; a default modality dropout of audio/vision
    there). What the user set explicitly is kept, and the trainer refuses it with the reason.

    ``modalities``: those the data has (``config.data.modalities`` wins). ``overrides``: what
    the user set (``{"train": {...}, "alignment": {...}}``); ``None`` when unknown (a config
    built by hand and given to the ``Trainer``), where a value equal to the model's default for
    this dataset kind counts as the default."""
    import sys

    from msakit.data.corruption import format_modality_dropout, parse_modality_dropout
    from msakit.models import get_model_class
    from msakit.objectives.alignment import parse_pairs

    used = set(config.data.modalities or modalities)
    defaults = get_model_class(config.model).dataset_defaults(config.data.kind)

    def explicit(section: str, key: str, same) -> bool:
        if overrides is not None:
            return key in ((overrides or {}).get(section) or {})
        default = defaults.get(section, {}).get(key, getattr({"train": TrainConfig, "alignment": AlignmentConfig}[section](), key))
        return not same(getattr(getattr(config, section), key), default)

    notes = []
    pairs_same = lambda a, b: parse_pairs(a, config.alignment.weight) == parse_pairs(b, config.alignment.weight)  # noqa: E731
    if not explicit("alignment", "pairs", pairs_same):
        pairs = parse_pairs(config.alignment.pairs, config.alignment.weight)
        kept = [(i, j, w) for i, j, w in pairs if i in used and j in used]
        if len(kept) != len(pairs):
            dropped = [f"{i}-{j}" for i, j, w in pairs if (i, j, w) not in kept]
            spec = ",".join(f"{i}-{j}:{w:g}" for i, j, w in kept) or "none"
            notes.append(f"default alignment pair(s) {', '.join(dropped)} need others and are skipped (alignment.pairs={spec})")
            config = dataclasses.replace(config, alignment=dataclasses.replace(config.alignment, pairs=spec))
    dropout_same = lambda a, b: parse_modality_dropout(a) == parse_modality_dropout(b)  # noqa: E731
    if not explicit("train", "modality_dropout", dropout_same):
        dropout = parse_modality_dropout(config.train.modality_dropout)
        kept_dropout = {m: p for m, p in dropout.items() if m in used}
        if kept_dropout != dropout:
            spec = format_modality_dropout(kept_dropout)
            notes.append(f"default modality dropout of {', '.join(sorted(set(dropout) - set(kept_dropout)))} is skipped "
                         f"(train.modality_dropout={spec or 'none'})")
            config = dataclasses.replace(config, train=dataclasses.replace(config.train, modality_dropout=spec))
    if notes and not quiet:
        print(f"note: the data has modalities {''.join(sorted(used, key='tav'.index))}; model {config.model}'s "
              + "; its ".join(notes), file=sys.stderr)
    return config


# Settings that change how a run reports, not what it computes: a finished run trained with
# another value is still the same run.
NOT_RESULTS = ("train.progress",)


def describe_differences(saved: dict, wanted: dict, limit: int = 5) -> str:
    """The first ``limit`` of ``config_differences`` with both values, e.g. ``model.fusion
    (concat in the run, auto now)``: what to repeat to continue or reuse the run; "" when none."""
    parts = []
    for name in config_differences(saved, wanted)[:limit]:
        section, _, key = name.partition(".")
        section = "model_config" if section == "model" and key else section
        old, new = ((d.get(section) or {}).get(key) if key else d.get(section) for d in (saved, wanted))
        parts.append(f"{name} ({old!r} in the run, {new!r} now)")
    return ", ".join(parts)


def config_differences(saved: dict, wanted: dict) -> list[str]:
    """``section.key`` names where two ``RunConfig.to_dict()`` payloads differ (``model.*`` for
    the model's own settings), leaving out ``NOT_RESULTS``."""
    keys = []
    for section in ("model", "model_config", "data", "train", "alignment"):
        a, b = saved.get(section), wanted.get(section)
        name = "model" if section == "model_config" else section
        if isinstance(a, dict) and isinstance(b, dict):
            keys += [f"{name}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and f"{name}.{k}" not in NOT_RESULTS]
        elif a != b:
            keys.append(name)
    return keys
