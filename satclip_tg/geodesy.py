"""Small geodesic helpers."""

import torch
from torch import Tensor

__all__ = ['EARTH_RADIUS_KM', 'great_circle_km']

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
