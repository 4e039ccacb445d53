import pytest
import torch

from dfsae import DecoderFreeSAE, StandardSAE, TopKSAE


def test_parameter_counts():
    assert DecoderFreeSAE(784, 64).num_parameters() == 50_240
    assert StandardSAE(784, 64).num_parameters() == 101_200
    assert TopKSAE(784, 64, k=8).num_parameters() == 101_200


def test_energies_responsibilities_and_similarities():
    model = DecoderFreeSAE(10, 4, activation="softplus", seed=0)
    x = torch.rand(6, 10)
    z = x @ model.W.T + model.encoder.bias
    e = model.energies(x)
    assert torch.allclose(e, torch.nn.functional.softplus(z))
    r = model.responsibilities(e)
    assert torch.allclose(r.sum(-1), torch.ones(6))
    s = model.similarities(e)
    assert (s >= 0).all()
    assert torch.equal(s.argmax(-1), e.argmin(-1))
    assert torch.allclose(s.min(-1).values, torch.zeros(6))


def test_implicit_decoder_is_w_transpose():
    model = DecoderFreeSAE(7, 3, seed=2)
    a = torch.rand(5, 3)
    loop = torch.stack([sum(a[i, j] * model.W[j] for j in range(3)) for i in range(5)])
    assert torch.allclose(model.implicit_decode(a), loop, atol=1e-6)


def test_topk_keeps_k_largest():
    model = TopKSAE(12, 9, k=3, seed=0)
    x = torch.rand(20, 12)
    a = model.encode(x)
    z = (x - model.decoder.bias) @ model.W.T + model.encoder.bias
    for i in range(20):
        keep = sorted(range(9), key=lambda j: -z[i, j].item())[:3]
        expected = torch.zeros(9)
        for j in keep:
            expected[j] = max(z[i, j].item(), 0.0)
        assert torch.allclose(a[i], expected)


def test_unit_norm_decoder():
    model = StandardSAE(8, 5, unit_norm_decoder=True, seed=0)
    assert torch.allclose(model.decoder_norms(), torch.ones(5))


def test_seeded_init_is_deterministic():
    a, b = DecoderFreeSAE(20, 5, seed=3), DecoderFreeSAE(20, 5, seed=3)
    assert torch.equal(a.W, b.W)
    assert not torch.equal(a.W, DecoderFreeSAE(20, 5, seed=4).W)


@pytest.mark.parametrize("kwargs,name", [
    ({"input_dim": 784, "hidden_dim": 0}, "hidden_dim"),
    ({"input_dim": 784, "hidden_dim": -3}, "hidden_dim"),
    ({"input_dim": 0, "hidden_dim": 3}, "input_dim"),
    ({"input_dim": 4, "hidden_dim": 3, "activation": "tanh"}, "activation"),
])
def test_bad_model_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DecoderFreeSAE(**kwargs)


def test_topk_k_larger_than_width():
    with pytest.raises(ValueError, match="k="):
        TopKSAE(4, 3, k=5)
