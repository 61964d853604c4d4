import copy
import io

import pytest
import torch

import satclip_tg
from satclip_tg import build_location_encoder, list_positional_encodings
from satclip_tg.testing import (
    check_location_encoder,
    check_positional_encoding,
    sample_coordinates,
)

SMALL_ARGS = {
    'sphericalharmonics': {'legendre_polys': 6},
    'grid': {'frequency_num': 4},
    'theory': {'frequency_num': 4},
    'spherec': {'frequency_num': 4},
    'spherecplus': {'frequency_num': 4},
    'spherem': {'frequency_num': 4},
    'spheremplus': {'frequency_num': 4},
}


@pytest.mark.parametrize('name', list_positional_encodings())
def test_every_registered_encoding_conforms(name) -> None:
    encoding = satclip_tg.get_positional_encoding(name, **SMALL_ARGS.get(name, {}))
    check_positional_encoding(encoding)


@pytest.mark.parametrize('name', list_positional_encodings())
@pytest.mark.parametrize('network', ['siren', 'linear'])
def test_every_encoding_builds_a_conforming_encoder(name, network) -> None:
    torch.manual_seed(0)
    encoder = build_location_encoder(
        name,
        network,
        embed_dim=8,
        positional_encoding_args=SMALL_ARGS.get(name, {}),
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1}
        if network == 'siren'
        else {},
    )
    check_location_encoder(encoder)


def test_public_api_and_config() -> None:
    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=32,
        positional_encoding_args={'legendre_polys': 10},
        network_args={'hidden_dim': 64, 'num_hidden_layers': 2},
    )
    assert isinstance(encoder, satclip_tg.LocationEncoder)
    assert encoder.positional_encoding.embedding_dim == 100
    assert encoder.embed_dim == 32
    assert encoder.config == {
        'positional_encoding': 'sphericalharmonics',
        'positional_encoding_args': {'legendre_polys': 10},
        'network': 'siren',
        'network_args': {'hidden_dim': 64, 'num_hidden_layers': 2},
        'embed_dim': 32,
    }
    assert encoder(torch.zeros(3, 2, dtype=torch.float64)).dtype == torch.float32
    with pytest.raises(ValueError, match='embed_dim'):
        build_location_encoder('wrap', 'linear', embed_dim=0)
    with pytest.raises(TypeError):
        build_location_encoder('wrap', 'linear', network_args={'no_such': 1})


def _torchgeo_satclip_float64():
    from torchgeo.models import SatCLIP

    previous = torch.get_default_dtype()
    # Built under float64 so its harmonic coefficients are not rounded to float32.
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        return SatCLIP(
            legendre_polys=40, capacity=512, embed_dim=256, num_hidden_layers=2
        )
    finally:
        torch.set_default_dtype(previous)


def _ours(weights: dict, dtype: torch.dtype):
    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=256,
        positional_encoding_args={'legendre_polys': 40},
        network_args={'hidden_dim': 512, 'num_hidden_layers': 2},
    ).to(dtype)
    encoder.network.load_state_dict(weights)
    return encoder.eval()


def test_parity_with_torchgeo_satclip() -> None:
    coords64 = sample_coordinates(n=2000, dtype=torch.float64)
    # TorchGeo clamps latitudes to +-89.95 degrees; compare where it does not.
    coords64 = coords64[coords64[:, 1].abs() < 89.95]
    reference64 = _torchgeo_satclip_float64().eval()
    with torch.no_grad():
        ours64 = _ours(reference64.nnet.state_dict(), torch.float64)
        torch.testing.assert_close(
            ours64(coords64), reference64(coords64), rtol=0, atol=1e-8
        )

        # float32: both models get the same float32-rounded weights and inputs;
        # the truth is the float64 model with those weights at those inputs.
        coords32 = coords64.float()
        reference32 = copy.deepcopy(reference64).float()
        exact = copy.deepcopy(reference32).double()
        truth = exact(coords32.double())
        ours32 = _ours(reference32.nnet.state_dict(), torch.float32)
        our_error = (ours32(coords32).double() - truth).abs().max().item()
        their_error = (reference32(coords32).double() - truth).abs().max().item()
    assert our_error <= max(their_error, 2e-4), (our_error, their_error)


def test_checkpoint_round_trip_through_config() -> None:
    encoder = build_location_encoder(
        'spherec', 'fcnet', embed_dim=5, positional_encoding_args={'frequency_num': 3}
    ).eval()
    buffer = io.BytesIO()
    torch.save({'config': encoder.config, 'state_dict': encoder.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    rebuilt = build_location_encoder(**saved['config'])
    rebuilt.load_state_dict(saved['state_dict'])
    coords = sample_coordinates()
    torch.testing.assert_close(rebuilt.eval()(coords), encoder(coords))
