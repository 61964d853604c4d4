"""The engine asks the encoder's parts for fast paths, not for their classes."""

from collections.abc import MutableMapping

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from satclip_tg import build_location_encoder
from satclip_tg.embedding import embed_points, embedding_width
from satclip_tg.embedding import engine as engine_module
from satclip_tg.embedding.capabilities import (
    SupportsEncodeInto,
    SupportsForwardInto,
    has_row_factorization,
)
from satclip_tg.location import encoder as encoder_module
from satclip_tg.location.encoder import LocationEncoder
from satclip_tg.location.encodings import base as base_module
from satclip_tg.location.encodings.spherical_harmonics import SphericalHarmonics
from satclip_tg.location.networks.siren import SirenNet
from satclip_tg.testing import sample_coordinates


class _PlainNetwork(nn.Module):
    """A plugin-like network with a forward only."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.forward_calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.forward_calls += 1
        out: Tensor = torch.tanh(self.linear(x))
        return out


class _FastNetwork(_PlainNetwork):
    """The same network offering the ``forward_into`` fast path."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__(dim_in, dim_out)
        self.fast_calls = 0

    def forward_into(
        self,
        x: Tensor,
        out: Tensor | None = None,
        *,
        scratch: MutableMapping[str, Tensor] | None = None,
    ) -> Tensor:
        self.fast_calls += 1
        result = torch.addmm(self.linear.bias, x, self.linear.weight.t(), out=out)
        return result.tanh_()


def _encoder(network: nn.Module) -> LocationEncoder:
    return LocationEncoder(SphericalHarmonics(4), network).eval()


@pytest.mark.parametrize('fast', [True, False], ids=['forward_into', 'fallback'])
def test_a_plugin_network_offers_its_own_fast_path(fast: bool) -> None:
    torch.manual_seed(0)
    network = _FastNetwork(16, 5) if fast else _PlainNetwork(16, 5)
    encoder = _encoder(network)
    assert isinstance(network, SupportsForwardInto) is fast
    assert isinstance(encoder.positional_encoding, SupportsEncodeInto)
    coords = sample_coordinates(240, seed=1, dtype=torch.float64)  # 250 rows
    with torch.no_grad():
        expected = encoder(coords).numpy()
    got = embed_points(encoder, coords, batch_size=100)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Three chunks, each evaluated once: no extra trial point for the width.
    if fast:
        assert (network.fast_calls, network.forward_calls) == (3, 1)
    else:
        assert network.forward_calls == 3 + 1


def test_a_training_network_is_not_asked_for_its_fast_path() -> None:
    network = _FastNetwork(16, 5)
    encoder = _encoder(network)
    assert not has_row_factorization(encoder)
    encoder.train()
    embed_points(encoder, [[0.0, 0.0]])  # switches to eval, then fast
    assert network.fast_calls == 1


def test_width_is_read_from_the_module() -> None:
    siren = LocationEncoder(SphericalHarmonics(3), SirenNet(9, 7, hidden_dim=8))
    assert siren.embed_dim == 7 and embedding_width(siren) == 7
    built = build_location_encoder('wrap', 'fcnet', embed_dim=6)
    assert embedding_width(built) == 6
    assert embedding_width(_encoder(_PlainNetwork(16, 5))) is None
    assert embed_points(siren, np.empty((0, 2))).shape == (0, 7)


def test_coordinates_are_validated_once(monkeypatch) -> None:
    calls = []

    def spy(coords: Tensor) -> Tensor:
        calls.append(len(coords))
        return coords

    for module in (engine_module, encoder_module, base_module):
        monkeypatch.setattr(module, 'validate_coordinates', spy)
    torch.manual_seed(0)
    encoder = build_location_encoder(
        'wrap', 'fcnet', embed_dim=4, network_args={'hidden_dim': 8}
    )
    coords = sample_coordinates(30, seed=2, dtype=torch.float64)
    embed_points(encoder, coords, batch_size=10)
    assert calls == [len(coords)]
    calls.clear()
    embed_points(encoder, coords, batch_size=10, validate=False)
    assert calls == []
