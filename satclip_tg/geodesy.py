"""Small geodesic helpers: the Earth radius, distances, area-uniform sampling.

The one home of these concepts: the downstream data sets, the Blue Marble
builder and `satclip_tg.testing` all sample the sphere through
`area_uniform_lonlat`, and land through `sample_on_land`.
"""

from collections.abc import Callable
from typing import overload

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

__all__ = [
    'EARTH_RADIUS_KM',
    'area_uniform_lonlat',
    'great_circle_km',
    'sample_on_land',
    'sample_sphere',
]

#: Mean Earth radius (IUGG), in km.
EARTH_RADIUS_KM = 6371.0088


def great_circle_km(a: Tensor, b: Tensor) -> Tensor:
    """Great-circle distance between (lon, lat) points, in km.

    Uses the haversine formula, which is well conditioned for small distances.

    Args:
        a: ``(..., 2)`` (lon, lat) in degrees.
        b: ``(..., 2)`` (lon, lat) in degrees, broadcastable against ``a``.

    Returns:
        Distances of the broadcast shape without the last dimension.
    """
    lon1, lat1 = torch.deg2rad(a[..., 0]), torch.deg2rad(a[..., 1])
    lon2, lat2 = torch.deg2rad(b[..., 0]), torch.deg2rad(b[..., 1])
    haversine = (
        torch.sin((lat2 - lat1) / 2) ** 2
        + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * torch.asin(haversine.clamp(0, 1).sqrt())


@overload
def area_uniform_lonlat(
    u_lon: NDArray[np.float64], u_lat: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...


@overload
def area_uniform_lonlat(u_lon: Tensor, u_lat: Tensor) -> tuple[Tensor, Tensor]: ...


def area_uniform_lonlat(
    u_lon: NDArray[np.float64] | Tensor, u_lat: NDArray[np.float64] | Tensor
) -> tuple[NDArray[np.float64] | Tensor, NDArray[np.float64] | Tensor]:
    r"""Area-uniform (lon, lat) in degrees from uniform draws on $[0, 1)$.

    Longitude is uniform; $\sin(\text{lat})$ is uniform on $[-1, 1]$, so that
    every band of latitude gets points in proportion to its area. Callers draw
    the uniforms in their own order (their seeds stay reproducible); this is
    the one place that maps them onto the sphere.

    Args:
        u_lon: Uniform draws for the longitudes (NumPy array or tensor).
        u_lat: Uniform draws for the latitudes, of the same kind.

    Returns:
        ``(lon, lat)``: lon in $[-180, 180)$, lat in $[-90, 90]$, of the
        inputs' kind.
    """
    if isinstance(u_lon, Tensor) and isinstance(u_lat, Tensor):
        return u_lon * 360 - 180, torch.rad2deg(torch.asin(u_lat * 2 - 1))
    lon = np.asarray(u_lon) * 360.0 - 180.0
    lat = np.degrees(np.arcsin(np.asarray(u_lat) * 2.0 - 1.0))
    return lon, lat


def sample_sphere(n: int, seed: int) -> NDArray[np.float64]:
    """Points distributed uniformly over the sphere's area.

    The draw is prefix-stable: the first ``k`` points of
    ``sample_sphere(n, seed)`` are ``sample_sphere(k, seed)``.

    Args:
        n: Number of points.
        seed: Seed of NumPy's default generator.

    Returns:
        ``(n, 2)`` float64 (lon, lat) in degrees.
    """
    u = np.random.default_rng(seed).random((n, 2))
    lon, lat = area_uniform_lonlat(u[:, 0], u[:, 1])
    return np.stack([lon, lat], axis=1)


def sample_on_land(
    n: int,
    seed: int,
    is_land: Callable[[NDArray[np.float64]], NDArray[np.bool_]],
) -> NDArray[np.float64]:
    """Area-uniform points on land, by rejection against a land mask.

    Prefix-stable like `sample_sphere`: the land points are those of
    ``sample_sphere(m, seed)`` in their order, for a large enough ``m``.

    Args:
        n: Number of points.
        seed: Seed.
        is_land: The mask: ``(N, 2)`` (lon, lat) degrees -> ``(N,)`` booleans.

    Returns:
        ``(n, 2)`` float64 (lon, lat) in degrees.
    """
    draws = max(4 * n, 256)
    while True:
        candidates = sample_sphere(draws, seed)
        land = candidates[is_land(candidates)]
        if len(land) >= n:
            return land[:n]
        draws *= 2
