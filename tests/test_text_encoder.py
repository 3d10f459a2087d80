"""The text encoder: offline loading, and the unpadded fast path is the same function."""

from __future__ import annotations

import pytest
import torch

from msakit.encoders.text import TextEncoder, default_text_encoder_path, load_tokenizer, resolve_encoder_path


def _batch(tokenizer, texts):
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


TEXTS = ["the movie was great", "honestly the acting was a complete disaster and i saw it last weekend", "okay", "the plot was so so if you ask me"]


def test_unpadded_forward_matches_the_stock_forward_and_its_gradients(tiny_bert_dir):
    tokenizer = load_tokenizer(tiny_bert_dir)
    fast = TextEncoder.from_pretrained(tiny_bert_dir)
    stock = TextEncoder.from_pretrained(tiny_bert_dir)
    stock.unpadded = False
    assert fast.unpadded
    ids, mask = _batch(tokenizer, TEXTS)
    fast.eval(), stock.eval()
    out_fast, out_stock = fast(ids, mask), stock(ids, mask)
    torch.testing.assert_close(out_fast, out_stock, atol=1e-5, rtol=1e-5)
    out_fast.sum().backward()
    out_stock.sum().backward()
    stock_grads = dict(stock.named_parameters())
    for name, p in fast.named_parameters():
        if p.grad is None:
            assert stock_grads[name].grad is None or stock_grads[name].grad.abs().max() < 1e-7, name
            continue
        torch.testing.assert_close(p.grad, stock_grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_packaged_minilm_loads_offline_and_reads_sentiment_words():
    try:
        path = default_text_encoder_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    encoder = TextEncoder.from_pretrained(path).eval()
    tokenizer = load_tokenizer(path)
    assert encoder.hidden_size == 384 and encoder.unpadded
    ids, mask = _batch(tokenizer, TEXTS)
    with torch.no_grad():
        fast = encoder(ids, mask)
        encoder.unpadded = False
        stock = encoder(ids, mask)
    torch.testing.assert_close(fast, stock, atol=1e-4, rtol=1e-4)
    assert fast.shape == (4, 384) and torch.isfinite(fast).all()


def test_a_missing_encoder_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        resolve_encoder_path(str(tmp_path / "bert-base-uncased"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_encoder_path(str(tmp_path / "empty"))
