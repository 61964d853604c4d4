import math

import numpy as np
import pytest
import torch

from satclip_tg import get_positional_encoding
from satclip_tg.location.encodings.spherical_harmonics import SphericalHarmonics
from satclip_tg.testing import sample_coordinates

special = pytest.importorskip('scipy.special', reason='scipy (dev extra) is needed')


def scipy_reference(coords: torch.Tensor, degrees: int, convention: str) -> np.ndarray:
    """Float64 reference from scipy's complex harmonics, converted to a convention.

    scipy includes the Condon-Shortley phase (-1)^m, which the real forms
    here do not, hence the (-1)^m factors.
    """
    lon, lat = coords.double().numpy().T
    if convention == 'satclip':
        theta, phi, m0_scale = np.radians(lat + 90), np.radians(lon + 180), math.pi
    else:
        theta, phi, m0_scale = np.radians(90 - lat), np.radians(lon), 1.0
    columns = []
    for degree in range(degrees):
        orders = np.arange(-degree, degree + 1)
        values = special.sph_harm_y(
            degree, np.abs(orders)[None, :], theta[:, None], phi[:, None]
        )
        sign = (-1.0) ** np.abs(orders)
        real = np.where(
            orders > 0,
            math.sqrt(2) * sign * values.real,
            np.where(
                orders < 0, math.sqrt(2) * sign * values.imag, m0_scale * values.real
            ),
        )
        columns.append(real)
    return np.concatenate(columns, axis=1)


@pytest.mark.parametrize('backend', ['numba', 'torch'])
@pytest.mark.parametrize('convention', ['satclip', 'orthonormal'])
@pytest.mark.parametrize('degrees', [1, 2, 10, 40])
def test_float32_matches_float64_reference(backend, convention, degrees) -> None:
    coords = sample_coordinates(n=300, dtype=torch.float32)
    encoding = SphericalHarmonics(degrees, convention=convention, backend=backend)
    out = encoding(coords)
    assert out.dtype == torch.float32
    assert out.shape == (coords.shape[0], degrees**2)
    error = np.abs(out.double().numpy() - scipy_reference(coords, degrees, convention))
    assert error.max() < 1e-4


@pytest.mark.parametrize('backend', ['numba', 'torch'])
def test_float64_high_degree_matches_reference(backend) -> None:
    coords = sample_coordinates(n=40, dtype=torch.float64)
    out = SphericalHarmonics(100, backend=backend)(coords)
    assert torch.isfinite(out).all()
    error = np.abs(out.numpy() - scipy_reference(coords, 100, 'satclip'))
    assert error.max() < 1e-8


def test_backends_agree_and_orthonormal_is_signed_satclip() -> None:
    coords = sample_coordinates(n=200, dtype=torch.float64)
    numba_out = SphericalHarmonics(20, backend='numba')(coords)
    torch_out = SphericalHarmonics(20, backend='torch')(coords)
    torch.testing.assert_close(numba_out, torch_out, rtol=0, atol=1e-12)
    ortho = SphericalHarmonics(20, convention='orthonormal')(coords)
    degree = torch.cat([torch.full((2 * d + 1,), d) for d in range(20)])
    is_m0 = torch.arange(400) == degree**2 + degree
    scale = torch.ones(400, dtype=torch.float64).masked_fill(is_m0, math.pi)
    scale = scale * (1 - 2 * (degree % 2))
    torch.testing.assert_close(numba_out, ortho * scale, rtol=0, atol=1e-12)


def test_orthonormal_harmonics_are_orthonormal() -> None:
    # Gauss-Legendre in cos(colatitude) x uniform in longitude integrates exactly.
    nodes, weights = np.polynomial.legendre.leggauss(12)
    lon = np.linspace(-180, 180, 24, endpoint=False)
    lat = np.degrees(np.arcsin(nodes))
    grid = torch.tensor([[x, y] for y in lat for x in lon], dtype=torch.float64)
    w = torch.tensor(np.repeat(weights, len(lon)) * (2 * np.pi / len(lon)))
    y = SphericalHarmonics(6, convention='orthonormal')(grid)
    gram = y.T @ (y * w[:, None])
    torch.testing.assert_close(
        gram, torch.eye(36, dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_poles_antimeridian_and_gradients_are_finite() -> None:
    coords = torch.tensor(
        [[0.0, 90.0], [77.0, -90.0], [-180.0, 0.0], [180.0, 0.0], [180.0, 90.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    out = SphericalHarmonics(40)(coords)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(coords.grad).all()
    torch.testing.assert_close(out[2], out[3], rtol=0, atol=1e-12)


def test_gradient_path_matches_fast_path() -> None:
    coords = sample_coordinates(n=50, dtype=torch.float32)
    with torch.no_grad():
        fast = SphericalHarmonics(16)(coords)
    slow = SphericalHarmonics(16)(coords.clone().requires_grad_(True))
    assert slow.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-6)


def test_registered_with_embedding_dim_and_validation() -> None:
    encoding = get_positional_encoding('sphericalharmonics', legendre_polys=7)
    assert encoding.embedding_dim == 49
    assert 'legendre_polys=7' in repr(encoding)
    assert SphericalHarmonics()(torch.zeros(0, 2)).shape == (0, 100)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='legendre_polys'):
            SphericalHarmonics(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='convention'):
        SphericalHarmonics(3, convention='textbook')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='backend'):
        SphericalHarmonics(3, backend='cuda')  # type: ignore[arg-type]


def test_matches_torchgeo_float64() -> None:
    from torchgeo.models.satclip import SphericalHarmonics as TorchGeoHarmonics

    coords = sample_coordinates(n=500, dtype=torch.float64)
    # TorchGeo clamps latitude to +-89.95 degrees; compare away from the poles.
    coords = coords[coords[:, 1].abs() < 89.95]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        reference = TorchGeoHarmonics(40)(coords)
    finally:
        torch.set_default_dtype(previous)
    ours = SphericalHarmonics(40)(coords)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-8)
