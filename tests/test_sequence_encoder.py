import torch

from msakit.encoders import SequenceLSTMEncoder


def test_unpacked_gather_equals_packed_final_state_values_and_gradients():
    # The fast path must be the same model as the reference packed LSTM, not an approximation.
    torch.manual_seed(0)
    frames = torch.randn(6, 40, 5)
    lengths = torch.tensor([40, 1, 17, 33, 5, 40])
    fast = SequenceLSTMEncoder(5, 8, 4, packed=False)
    reference = SequenceLSTMEncoder(5, 8, 4, packed=True)
    reference.load_state_dict(fast.state_dict())
    out_fast, out_ref = fast(frames, lengths), reference(frames, lengths)
    torch.testing.assert_close(out_fast, out_ref, atol=1e-5, rtol=1e-5)
    out_fast.square().sum().backward()
    out_ref.square().sum().backward()
    for (name, p_fast), p_ref in zip(fast.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_padding_frames_do_not_change_the_encoding():
    torch.manual_seed(1)
    encoder = SequenceLSTMEncoder(3, 6, 2)
    frames = torch.randn(2, 10, 3)
    lengths = torch.tensor([4, 10])
    noisy = frames.clone()
    noisy[0, 4:] = 1e3  # garbage after the valid frames
    torch.testing.assert_close(encoder(frames, lengths), encoder(noisy, lengths))
