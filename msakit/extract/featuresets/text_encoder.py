"""Text feature set ``text_encoder``: hidden states of a local text encoder directory
(``transformers`` format: BERT, RoBERTa, XLNet, DistilBERT, ALBERT, DeBERTa, ELECTRA, MPNet,
XLM-R) for each clip's transcript (given, or recognised from its speech), as precomputed features
beside the transcript: the pickle's ``text`` ``(N, tokens, dim)`` and ``text_lengths``, as in the
MMSA releases (``raw_text`` is kept).

- ``text_encoder``: the model directory, with its tokenizer files.
- ``text_layer``: ``last`` (default), ``N`` (0 = the embeddings), ``mean`` or ``A-B``.
- One row per token, special tokens included, at most ``MAX_TOKENS`` (or the model's position limit).

Licence: that of the model the user gives; ``transformers``: Apache-2.0.
"""

from __future__ import annotations

import numpy as np

from msakit.extract.featuresets import _local_model

KINDS = {"bert": "BERT", "roberta": "RoBERTa", "xlnet": "XLNet", "distilbert": "DistilBERT", "albert": "ALBERT", "deberta": "DeBERTa",
         "deberta-v2": "DeBERTa", "electra": "ELECTRA", "mpnet": "MPNet", "xlm-roberta": "XLM-R"}
MAX_TOKENS = 512


def _config(settings) -> dict:
    return _local_model.config_of(settings.text_encoder, "text_encoder", KINDS, "a text encoder")


def check(settings) -> None:
    config = _config(settings)
    _local_model.parse_layer(settings.text_layer, _local_model.layer_count(config), "text_layer")


def describe(settings) -> dict:
    config = _config(settings)
    span = _local_model.parse_layer(settings.text_layer, _local_model.layer_count(config), "text_layer")
    hidden = int(config.get("hidden_size") or config.get("d_model"))
    return {"key": "raw_text", "features_key": "text", "lengths_key": "text_lengths", "dim": hidden, "rate_hz": 0.0,
            "frames": "one row per token (special tokens included)", "names": None,
            "library": f"transformers {_local_model.version('transformers')}, torch {_local_model.version('torch')}: "
                       f"{KINDS[config['model_type']]} hidden states",
            "licence": "the model's own (see its directory); transformers: Apache-2.0",
            **_local_model.model_description(settings.text_encoder, config, settings.text_layer, span)}


def fingerprint(settings) -> dict:
    return {"model_sha256": _local_model.digest(settings.text_encoder), "transformers": _local_model.version("transformers"),
            "torch": _local_model.version("torch"), "max_tokens": MAX_TOKENS}


def _load(directory: str):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    model.msakit_tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    return model


def features(settings, text: str) -> np.ndarray:
    """``float32 (tokens, dim)`` of one transcript."""
    import torch

    config = _config(settings)
    model = _local_model.load(settings.text_encoder, _load)
    span = _local_model.parse_layer(settings.text_layer, _local_model.layer_count(config), "text_layer")
    limit = min(MAX_TOKENS, int(config.get("max_position_embeddings") or MAX_TOKENS))
    encoded = model.msakit_tokenizer(text or "", return_tensors="pt", truncation=True, max_length=limit)
    with torch.inference_mode():
        hidden = model(**encoded, output_hidden_states=True).hidden_states
    return _local_model.as_float32(_local_model.pick(hidden, span)[0])
