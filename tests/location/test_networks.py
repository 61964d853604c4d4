import math

import pytest
import torch

from satclip_tg import get_network, list_networks
from satclip_tg.location.networks import FCNet, LinearNetwork, MLPNetwork, SirenNet
from satclip_tg.testing import check_network


@pytest.mark.parametrize('name', ['siren', 'fcnet', 'mlp', 'linear'])
def test_builtin_networks_conform(name) -> None:
    assert name in list_networks()
    check_network(lambda dim_in, dim_out: get_network(name, dim_in, dim_out))


def test_siren_shapes_keys_and_initialisation() -> None:
    torch.manual_seed(0)
    net = SirenNet(1600, 256, hidden_dim=512, num_hidden_layers=2)
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    assert shapes == {
        'layers.0.weight': (512, 1600),
        'layers.0.bias': (512,),
        'layers.1.weight': (512, 512),
        'layers.1.bias': (512,),
        'last_layer.weight': (256, 512),
        'last_layer.bias': (256,),
    }
    first, hidden = net.layers[0], net.layers[1]
    assert first.w0 == 30.0 and hidden.w0 == 1.0
    for tensor in (first.weight, first.bias):
        assert tensor.abs().max() <= 1 / 1600
        assert tensor.abs().max() > 0.9 / 1600
    bound = math.sqrt(6 / 512)
    for tensor in (hidden.weight, hidden.bias, net.last_layer.weight):
        assert tensor.abs().max() <= bound
        assert tensor.abs().max() > 0.9 * bound


def test_siren_dropout_acts_before_the_sine_in_training_only() -> None:
    torch.manual_seed(0)
    net = SirenNet(8, 4, hidden_dim=64, num_hidden_layers=1, dropout=0.5)
    x = torch.randn(16, 8)
    layer = net.layers[0]
    net.train()
    hidden = layer(x)
    # A dropped pre-activation gives sin(0) = 0 exactly.
    zeros = (hidden == 0).float().mean().item()
    assert 0.3 < zeros < 0.7
    net.eval()
    expected = torch.sin(30 * torch.nn.functional.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(net(x), net(x))


def test_mlp_layers_are_independent() -> None:
    net = MLPNetwork(4, 2, hidden_dim=8, num_hidden_layers=3)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4
    pointers = {layer.weight.data_ptr() for layer in linears}
    assert len(pointers) == 4


def test_fcnet_structure() -> None:
    net = FCNet(10, 6, hidden_dim=32, num_residual_layers=4)
    assert len(net.residual_layers) == 4
    assert net.head.bias is None
    assert net(torch.randn(3, 10)).shape == (3, 6)


@pytest.mark.parametrize(
    ('factory', 'kwargs', 'match'),
    [
        (SirenNet, {'hidden_dim': 0}, 'hidden_dim'),
        (SirenNet, {'dropout': 1.0}, 'dropout'),
        (FCNet, {'num_residual_layers': -1}, 'num_residual_layers'),
        (MLPNetwork, {'num_hidden_layers': 1.5}, 'num_hidden_layers'),
    ],
)
def test_bad_hyperparameters_are_named(factory, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        factory(4, 2, **kwargs)
    with pytest.raises(ValueError, match='dim_out'):
        LinearNetwork(4, 0)
