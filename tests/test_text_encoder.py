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


def test_sentence_vectors_are_the_mean_of_the_real_tokens_states_on_every_path(tiny_bert_dir):
    """The utterance vector the context LSTM reads: the packed path, the stock forward and a
    frozen encoder's cache give the same mean over real tokens (padding never enters it)."""
    tokenizer = load_tokenizer(tiny_bert_dir)
    ids, mask = _batch(tokenizer, TEXTS)
    fast = TextEncoder.from_pretrained(tiny_bert_dir).eval()
    with torch.no_grad():
        states = fast.token_states(ids, mask)
        expected = torch.stack([states[i, : int(mask[i].sum())].mean(dim=0) for i in range(len(TEXTS))])
        packed = fast.sentence_vectors(ids, mask)
        fast.unpadded = False
        stock = fast.sentence_vectors(ids, mask)
        frozen = TextEncoder.from_pretrained(tiny_bert_dir).eval().freeze().sentence_vectors(ids, mask)
    assert packed.dtype == torch.float32 and packed.shape == (len(TEXTS), fast.hidden_size)
    for got in (packed, stock, frozen):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


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


@pytest.mark.bad_input
def test_a_missing_encoder_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        resolve_encoder_path(str(tmp_path / "bert-base-uncased"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_encoder_path(str(tmp_path / "empty"))


@pytest.mark.parametrize("architecture", ["distilbert", "electra"])
def test_encoders_without_a_pooler_train_and_reload(architecture, tiny_bert_dir, small_synthetic, tmp_path):
    """BERT-family models without a pooler (DistilBERT, ELECTRA) load, train and reload from a run."""
    import shutil

    from transformers import DistilBertConfig, DistilBertModel, ElectraConfig, ElectraModel

    import msakit

    directory = tmp_path / architecture
    shutil.copytree(tiny_bert_dir, directory)
    for weights in directory.glob("*.safetensors"):
        weights.unlink()
    (directory / "config.json").unlink()
    vocab = len((tiny_bert_dir / "vocab.txt").read_text().split())
    torch.manual_seed(0)
    if architecture == "distilbert":
        model = DistilBertModel(DistilBertConfig(vocab_size=vocab, dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=64))
    else:
        model = ElectraModel(ElectraConfig(vocab_size=vocab, embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(str(directory))

    overrides = {"model": {"text_encoder": str(directory)}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False}}
    result = msakit.train("self_mm", small_synthetic, seeds=[1111], run_dir=tmp_path / "run", overrides=overrides)
    again = msakit.evaluate(tmp_path / "run", small_synthetic, device="cpu")
    assert again["per_seed"]["seed_1111"]["MAE"] == pytest.approx(result.per_seed[1111]["MAE"], abs=1e-5)
