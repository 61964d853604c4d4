"""Tests of the simple, sinusoidal and Sphere2Vec positional encodings."""

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from satclip_tg.location.encodings.base import PositionalEncoding
from satclip_tg.location.encodings.simple import Cartesian3D, Direct
from satclip_tg.location.encodings.sinusoidal import (
    Space2VecGrid,
    Space2VecTheory,
    Wrap,
    geometric_radii,
)
from satclip_tg.location.encodings.sphere2vec import (
    SphereC,
    SphereCPlus,
    SphereM,
    SphereMPlus,
)

ALL = [
    Direct,
    Cartesian3D,
    Wrap,
    Space2VecGrid,
    Space2VecTheory,
    SphereC,
    SphereCPlus,
    SphereM,
    SphereMPlus,
]
MULTI_SCALE = [
    Space2VecGrid,
    Space2VecTheory,
    SphereC,
    SphereCPlus,
    SphereM,
    SphereMPlus,
]
SPHERE = [SphereC, SphereCPlus, SphereM, SphereMPlus]
PER_SCALE = {
    Space2VecGrid: 4,
    Space2VecTheory: 6,
    SphereC: 3,
    SphereCPlus: 6,
    SphereM: 5,
    SphereMPlus: 8,
}

# Hand-picked (lon, lat) points: origin, poles at the antimeridian, cities.
POINTS = np.array(
    [
        [0.0, 0.0],
        [-180.0, 90.0],
        [180.0, -90.0],
        [90.0, 0.0],
        [12.3, 45.6],
        [-73.98, 40.75],
        [151.21, -33.87],
        [-0.5, -89.0],
    ]
)


# Independent NumPy references, written from the papers' formulas.
def ref_direct(p: np.ndarray) -> np.ndarray:
    return np.radians(p) - np.pi


def ref_cartesian(p: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(p[:, 0]), np.radians(p[:, 1])
    return np.column_stack(
        [np.cos(lon) * np.cos(lat), np.sin(lon) * np.cos(lat), np.sin(lat)]
    )


def ref_wrap(p: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(p[:, 0]), np.radians(p[:, 1])
    return np.column_stack([np.cos(lon), np.sin(lon), np.cos(lat), np.sin(lat)])


def _radii(s: int, rmin: float, rmax: float) -> np.ndarray:
    return np.geomspace(rmin, rmax, s) if s > 1 else np.array([rmax])


def ref_multiscale(name: str, p: np.ndarray, s: int, rmin: float, rmax: float):
    lam, phi = np.radians(p[:, 0]), np.radians(p[:, 1])
    cols = []
    for r in _radii(s, rmin, rmax):
        ls, ps = lam / r, phi / r
        if name == 'grid':
            cols += [np.sin(ls), np.cos(ls), np.sin(ps), np.cos(ps)]
        elif name == 'theory':
            for ax, ay in [(1, 0), (-0.5, 3**0.5 / 2), (-0.5, -(3**0.5) / 2)]:
                proj = (ax * lam + ay * phi) / r
                cols += [np.sin(proj), np.cos(proj)]
        elif name == 'spherec':
            cols += [np.sin(ps), np.cos(ps) * np.cos(ls), np.cos(ps) * np.sin(ls)]
        elif name == 'spherecplus':
            cols += [np.sin(ps), np.cos(ps), np.sin(ls), np.cos(ls)]
            cols += [np.cos(ps) * np.cos(ls), np.cos(ps) * np.sin(ls)]
        elif name == 'spherem':
            cols += [np.sin(ps), np.cos(ps) * np.cos(lam), np.cos(phi) * np.cos(ls)]
            cols += [np.cos(ps) * np.sin(lam), np.cos(phi) * np.sin(ls)]
        elif name == 'spheremplus':
            cols += [np.sin(ps), np.cos(ps), np.sin(ls), np.cos(ls)]
            cols += [np.cos(ps) * np.cos(lam), np.cos(phi) * np.cos(ls)]
            cols += [np.cos(ps) * np.sin(lam), np.cos(phi) * np.sin(ls)]
    return np.column_stack(cols)


MS_NAMES = {
    Space2VecGrid: 'grid',
    Space2VecTheory: 'theory',
    SphereC: 'spherec',
    SphereCPlus: 'spherecplus',
    SphereM: 'spherem',
    SphereMPlus: 'spheremplus',
}


def random_points(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    lon = torch.rand(n, generator=gen, dtype=torch.float64) * 360 - 180
    # Uniform on the sphere.
    lat = torch.rad2deg(
        torch.asin(torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1)
    )
    return torch.stack((lon, lat), dim=1)


@pytest.mark.parametrize(
    ('cls', 'ref'),
    [(Direct, ref_direct), (Cartesian3D, ref_cartesian), (Wrap, ref_wrap)],
)
def test_single_scale_formulas(
    cls: type[PositionalEncoding], ref: Callable[[np.ndarray], np.ndarray]
) -> None:
    enc = cls()
    out = enc(torch.from_numpy(POINTS))
    np.testing.assert_allclose(out.numpy(), ref(POINTS), rtol=0, atol=1e-12)
    out32 = enc(torch.from_numpy(POINTS).float())
    np.testing.assert_allclose(out32.numpy(), ref(POINTS), rtol=0, atol=1e-6)


@pytest.mark.parametrize('cls', MULTI_SCALE)
@pytest.mark.parametrize(
    ('s', 'rmin', 'rmax'), [(None, None, None), (1, 0.01, 0.3), (3, 0.05, 2.0)]
)
def test_multi_scale_formulas(
    cls: type, s: int | None, rmin: float | None, rmax: float | None
) -> None:
    if s is None:
        enc = cls()
        s, rmin, rmax = enc.frequency_num, enc.min_radius, enc.max_radius
    else:
        enc = cls(frequency_num=s, min_radius=rmin, max_radius=rmax)
    expected = ref_multiscale(MS_NAMES[cls], POINTS, s, rmin, rmax)
    assert expected.shape[1] == enc.embedding_dim == PER_SCALE[cls] * s
    out = enc(torch.from_numpy(POINTS))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-10)
    # float32: angles up to 360 * pi rad, so absolute errors of order 1e-4.
    out32 = enc(torch.from_numpy(POINTS).float())
    np.testing.assert_allclose(out32.numpy(), expected, rtol=0, atol=5e-4)


def test_default_hyperparameters() -> None:
    for cls in MULTI_SCALE:
        enc = cls()
        assert enc.frequency_num == 16
        assert enc.min_radius == pytest.approx(1 / 360)
        assert enc.max_radius == (0.5 if cls in (SphereM, SphereMPlus) else 1.0)
        assert enc.embedding_dim == PER_SCALE[cls] * 16
        assert 'frequency_num=16' in repr(enc)


def test_spherec_coarsest_scale_is_cartesian() -> None:
    enc = SphereC(frequency_num=4, min_radius=0.1, max_radius=1.0)
    coords = torch.from_numpy(POINTS)
    xyz = Cartesian3D()(coords)
    # sphereC orders (z, x, y) within a scale.
    torch.testing.assert_close(enc(coords)[:, -3:], xyz[:, [2, 0, 1]])


@pytest.mark.parametrize('cls', ALL)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_dtype_shape_and_device_preserved(
    cls: type[PositionalEncoding], dtype: torch.dtype
) -> None:
    enc = cls()
    coords = random_points(17).to(dtype)
    out = enc(coords)
    assert out.shape == (17, enc.embedding_dim)
    assert out.dtype == dtype
    assert out.device == coords.device
    assert torch.isfinite(out).all()
    # Converting the module does not change the dtype of the computation.
    other = torch.float64 if dtype == torch.float32 else torch.float32
    assert enc.to(other)(coords).dtype == dtype


@pytest.mark.parametrize('cls', ALL)
def test_no_state_and_gradients(cls: type[PositionalEncoding]) -> None:
    enc = cls()
    assert list(enc.state_dict()) == []
    assert list(enc.parameters()) == []
    coords = random_points(5).float().requires_grad_(True)
    enc(coords).sum().backward()
    assert coords.grad is not None
    assert torch.isfinite(coords.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('cls', ALL)
def test_cuda_matches_cpu(cls: type[PositionalEncoding]) -> None:
    enc = cls()
    coords = random_points(64)
    expected = enc(coords)
    out = enc.to('cuda')(coords.cuda())
    assert out.device.type == 'cuda'
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize('cls', [*SPHERE, Space2VecGrid, Space2VecTheory])
def test_no_duplicate_columns(cls: type) -> None:
    enc = cls()
    out = enc(random_points(2000)).numpy()
    # Pairwise distinct up to sign and scale: |correlation| clearly below 1.
    corr = np.corrcoef(out, rowvar=False)
    np.fill_diagonal(corr, 0)
    assert np.nanmax(np.abs(corr)) < 0.999
    # No column equals another exactly either (a constant column has NaN corr).
    diffs = np.abs(out[:, :, None] - out[:, None, :]).max(axis=0)
    np.fill_diagonal(diffs, np.inf)
    assert diffs.min() > 1e-3


@pytest.mark.parametrize('cls', [*SPHERE, Space2VecGrid, Space2VecTheory])
def test_full_column_rank(cls: type) -> None:
    enc = cls(frequency_num=4, min_radius=0.05, max_radius=0.8)
    out = enc(random_points(3000)).numpy()
    assert np.linalg.matrix_rank(out) == enc.embedding_dim


def test_geometric_radii() -> None:
    radii = geometric_radii(16, 1 / 360, 1.0)
    np.testing.assert_allclose(radii, np.geomspace(1 / 360, 1.0, 16), rtol=1e-12)
    assert radii[0] == 1 / 360
    assert radii[-1] == 1.0
    assert geometric_radii(1, 0.1, 0.7) == [0.7]
    ratios = np.diff(np.log(radii))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)


@pytest.mark.parametrize('cls', MULTI_SCALE)
@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'frequency_num': 0}, 'frequency_num'),
        ({'frequency_num': -3}, 'frequency_num'),
        ({'frequency_num': 2.0}, 'frequency_num'),
        ({'frequency_num': True}, 'frequency_num'),
        ({'min_radius': 0.0}, 'min_radius'),
        ({'min_radius': -0.1}, 'min_radius'),
        ({'min_radius': math.nan}, 'min_radius'),
        ({'max_radius': math.inf}, 'max_radius'),
        ({'max_radius': -1.0}, 'max_radius'),
        ({'min_radius': 0.4, 'max_radius': 0.4}, 'smaller than max_radius'),
        ({'min_radius': 0.3, 'max_radius': 0.2}, 'smaller than max_radius'),
    ],
)
def test_scale_parameters_validated(
    cls: type, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize('cls', [SphereM, SphereMPlus])
def test_mixed_encodings_reject_unit_frequency(cls: type) -> None:
    with pytest.raises(ValueError, match='duplicate'):
        cls(max_radius=1.0)
    with pytest.raises(ValueError, match='duplicate'):
        cls(frequency_num=3, min_radius=0.25, max_radius=4.0)
    cls(max_radius=1.1)  # no scale at exactly 1


@pytest.mark.parametrize('cls', [SphereC, SphereCPlus, Space2VecGrid])
def test_unit_frequency_allowed_without_mixed_terms(cls: type) -> None:
    out = cls(max_radius=1.0)(random_points(10))
    assert out.shape[1] == cls().embedding_dim


def test_single_scale_uses_max_radius() -> None:
    enc = Space2VecGrid(frequency_num=1, min_radius=0.01, max_radius=1.0)
    coords = torch.from_numpy(POINTS)
    wrap = Wrap()(coords)
    # Per scale: (sin lon, cos lon, sin lat, cos lat); wrap: (cos, sin, cos, sin).
    torch.testing.assert_close(enc(coords), wrap[:, [1, 0, 3, 2]])


def _antimeridian(lat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    west = torch.stack((torch.full_like(lat, -180.0), lat), dim=1)
    east = torch.stack((torch.full_like(lat, 180.0), lat), dim=1)
    return west, east


def _poles(n: int) -> torch.Tensor:
    lon = torch.linspace(-180, 180, n, dtype=torch.float64)
    north = torch.stack((lon, torch.full_like(lon, 90.0)), dim=1)
    south = torch.stack((lon, torch.full_like(lon, -90.0)), dim=1)
    return torch.cat((north, south))


@pytest.mark.parametrize('cls', ALL)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_geometric_claims_hold(cls: type[PositionalEncoding], dtype: torch.dtype):
    enc = cls()
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    west, east = _antimeridian(torch.linspace(-90, 90, 37, dtype=dtype))
    periodic = torch.allclose(enc(west), enc(east), rtol=0, atol=atol)
    assert periodic == cls.periodic_in_longitude
    poles = enc(_poles(9).to(dtype))
    north, south = poles[:9], poles[9:]
    invariant = torch.allclose(
        north, north[:1].expand_as(north), rtol=0, atol=atol
    ) and torch.allclose(south, south[:1].expand_as(south), rtol=0, atol=atol)
    assert invariant == cls.pole_invariant


def test_cartesian_poles_exact() -> None:
    out = Cartesian3D()(_poles(5).float())
    expected = torch.tensor([[0.0, 0.0, 1.0]] * 5 + [[0.0, 0.0, -1.0]] * 5)
    assert torch.equal(out, expected)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(10))


def test_direct_ranges() -> None:
    out = Direct()(torch.tensor([[-180.0, -90.0], [180.0, 90.0]], dtype=torch.float64))
    expected = torch.tensor(
        [[-2 * math.pi, -1.5 * math.pi], [0.0, -0.5 * math.pi]], dtype=torch.float64
    )
    torch.testing.assert_close(out, expected)


def test_invalid_coordinates_rejected() -> None:
    with pytest.raises(ValueError, match='invalid'):
        SphereC()(torch.tensor([[10.0, 95.0]]))
