from msakit.encoders.sequence import SequenceLSTMEncoder
from msakit.encoders.text import TextEncoder, default_text_encoder_path, load_tokenizer

__all__ = ["SequenceLSTMEncoder", "TextEncoder", "default_text_encoder_path", "load_tokenizer"]
