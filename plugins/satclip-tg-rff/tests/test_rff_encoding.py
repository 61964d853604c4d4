"""Tests of the satclip-tg-rff plugin: conformance, formulas, registration."""

import math

import pytest
import satclip_tg_rff.plugin
import torch
from satclip_tg_rff import RandomFourierFeatures, equal_earth
from satclip_tg_rff.encoding import GEOCLIP_SCALE

from satclip_tg import build_location_encoder, list_positional_encodings
from satclip_tg.testing import (
    check_location_encoder,
    check_plugin,
    check_positional_encoding,
)


# --- the author's kit: conformance in a few lines ---------------------------
@pytest.mark.parametrize('projection', ['equal_earth', 'plate_carree'])
def test_conformance(projection) -> None:
    check_positional_encoding(RandomFourierFeatures(projection=projection))
    check_positional_encoding(
        RandomFourierFeatures(sigmas=[3.0], num_frequencies=1, projection=projection)
    )


def test_plugin_module_passes_the_kit() -> None:
    components = check_plugin(satclip_tg_rff.plugin)
    assert [(c.kind, c.name) for c in components] == [('positional_encoding', 'rff')]


def test_registered_through_the_entry_point() -> None:
    assert 'rff' in list_positional_encodings()


def test_encoder_conformance() -> None:
    encoder = build_location_encoder(
        'rff',
        'siren',
        embed_dim=16,
        positional_encoding_args={'sigmas': [1, 16], 'num_frequencies': 32},
        network_args={'hidden_dim': 32},
    )
    assert encoder.positional_encoding.embedding_dim == 128
    check_location_encoder(encoder)


# --- Equal Earth ------------------------------------------------------------
def test_equal_earth_known_values() -> None:
    # The extent of the map of the unit sphere, and a point checked against
    # PROJ (+proj=eqearth +R=1).
    coords = torch.tensor(
        [[0.0, 0.0], [180.0, 0.0], [0.0, 90.0], [-180.0, -90.0], [-45.5, 33.3]],
        dtype=torch.float64,
    )
    expected = torch.tensor(
        [
            [0.0, 0.0],
            [2.7066299836960748, 0.0],
            [0.0, 1.3173627591574133],
            [-1.6035886482840516, -1.3173627591574133],
            [-0.6298648604366466, 0.6542415899632716],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(equal_earth(coords), expected, rtol=0, atol=1e-12)


def test_equal_earth_matches_proj() -> None:
    pyproj = pytest.importorskip('pyproj')
    coords = torch.tensor(
        [[-179.0, -89.0], [10.0, 51.5], [151.2, -33.9], [-74.0, 40.7], [0.1, 0.0]],
        dtype=torch.float64,
    )
    x, y = pyproj.Proj('+proj=eqearth +R=1')(coords[:, 0].numpy(), coords[:, 1].numpy())
    expected = torch.stack([torch.as_tensor(x), torch.as_tensor(y)], dim=1)
    torch.testing.assert_close(equal_earth(coords), expected, rtol=0, atol=1e-12)


def test_equal_earth_is_equal_area() -> None:
    # |d(x, y) / d(lambda, phi)| = cos(phi): equal areas on the sphere stay equal.
    generator = torch.Generator().manual_seed(1)
    lon = torch.rand(20, generator=generator, dtype=torch.float64) * 358 - 179
    lat = torch.rand(20, generator=generator, dtype=torch.float64) * 170 - 85
    for point in torch.stack([lon, lat], dim=1):
        radians = torch.deg2rad(point)

        def projected(radians):
            return equal_earth(torch.rad2deg(radians)[None])[0]

        jacobian = torch.autograd.functional.jacobian(projected, radians)
        determinant = torch.linalg.det(jacobian)
        assert determinant.item() == pytest.approx(
            math.cos(radians[1].item()), abs=1e-12
        )


def test_equal_earth_geoclip_normalisation() -> None:
    encoding = RandomFourierFeatures()
    edge = encoding.project(torch.tensor([[180.0, 0.0]], dtype=torch.float64))
    assert edge[0, 0].item() == pytest.approx(1.0, abs=1e-4)
    assert GEOCLIP_SCALE == pytest.approx(66.50336 / 180)
    plate = RandomFourierFeatures(projection='plate_carree')
    torch.testing.assert_close(
        plate.project(torch.tensor([[90.0, -45.0]], dtype=torch.float64)),
        torch.tensor([[0.5, -0.25]], dtype=torch.float64),
    )


# --- random Fourier features ------------------------------------------------
def test_features_follow_the_formula() -> None:
    encoding = RandomFourierFeatures(sigmas=[1.0, 8.0], num_frequencies=5, seed=3)
    coords = torch.tensor([[12.0, -7.5], [-170.0, 80.0]], dtype=torch.float64)
    points = encoding.project(coords)
    expected = []
    for k in range(2):
        angles = 2 * math.pi * points @ encoding.frequencies[k].T
        expected += [torch.cos(angles), torch.sin(angles)]
    torch.testing.assert_close(
        encoding(coords), torch.cat(expected, dim=1), rtol=0, atol=1e-12
    )
    assert encoding.embedding_dim == 2 * 5 * 2


def test_frequencies_are_scaled_gaussians_drawn_from_the_seed() -> None:
    encoding = RandomFourierFeatures(sigmas=[0.5, 16.0], num_frequencies=20000)
    for k, sigma in enumerate([0.5, 16.0]):
        std = encoding.frequencies[k].std().item()
        assert std == pytest.approx(sigma, rel=0.03)
    same = RandomFourierFeatures(sigmas=[0.5, 16.0], num_frequencies=20000)
    assert torch.equal(same.frequencies, encoding.frequencies)
    other = RandomFourierFeatures(sigmas=[0.5, 16.0], num_frequencies=20000, seed=1)
    assert not torch.equal(other.frequencies, encoding.frequencies)


def test_inner_products_approximate_a_gaussian_kernel() -> None:
    sigma, m = 1.0, 20000
    encoding = RandomFourierFeatures(
        sigmas=[sigma], num_frequencies=m, projection='plate_carree'
    )
    origin = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    for lon in (0.0, 5.0, 10.0, 20.0, 40.0):
        point = torch.tensor([[lon, 0.0]], dtype=torch.float64)
        kernel = (encoding(origin) @ encoding(point).T).item() / m
        distance = lon / 180
        expected = math.exp(-2 * math.pi**2 * sigma**2 * distance**2)
        assert kernel == pytest.approx(expected, abs=0.02)


def test_state_dict_carries_the_frequencies() -> None:
    encoding = RandomFourierFeatures(num_frequencies=8, seed=0)
    assert set(encoding.state_dict()) == {'frequencies'}
    restored = RandomFourierFeatures(num_frequencies=8, seed=123)
    coords = torch.tensor([[1.0, 2.0]])
    assert not torch.equal(restored(coords), encoding(coords))
    restored.load_state_dict(encoding.state_dict())
    assert torch.equal(restored(coords), encoding(coords))


def test_dtype_follows_the_input() -> None:
    encoding = RandomFourierFeatures(num_frequencies=4)
    assert encoding(torch.zeros(3, 2)).dtype == torch.float32
    assert encoding(torch.zeros(3, 2, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'sigmas': []}, 'non-empty'),
        ({'sigmas': 2.0}, 'non-empty'),
        ({'sigmas': [1.0, -2.0]}, 'positive finite'),
        ({'sigmas': [float('inf')]}, 'positive finite'),
        ({'num_frequencies': 0}, 'num_frequencies'),
        ({'projection': 'mercator'}, 'projection'),
        ({'seed': 1.5}, 'seed'),
    ],
)
def test_invalid_hyperparameters(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        RandomFourierFeatures(**kwargs)


def test_repr_shows_the_hyperparameters() -> None:
    text = repr(RandomFourierFeatures(sigmas=[1, 16], num_frequencies=4))
    assert "sigmas=[1, 16], num_frequencies=4, projection='equal_earth'" in text
    assert 'embedding_dim=16' in text
