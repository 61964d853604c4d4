"""Validation of (lon, lat) coordinate tensors.

Every location encoder in satclip-tg takes coordinates as a floating-point
tensor of shape ``(N, 2)`` holding **(longitude, latitude) in degrees, in that
order**. GeoCLIP and many GIS tools use (lat, lon); mixing the two up is a
silent bug, so values outside the valid ranges are rejected loudly.
"""

import torch
from torch import Tensor

__all__ = ['validate_coordinates']


def validate_coordinates(coords: Tensor) -> Tensor:
    """Check that ``coords`` is an ``(N, 2)`` float tensor of valid (lon, lat).

    Args:
        coords: Coordinates as (longitude, latitude) in degrees, with longitude
            in [-180, 180] and latitude in [-90, 90].

    Returns:
        The same tensor, unchanged, so that the call can be chained.

    Raises:
        TypeError: If ``coords`` is not a floating-point `torch.Tensor`.
        ValueError: If the shape is not ``(N, 2)``, or if any row holds NaN,
            infinity or an out-of-range value. The message gives the number of
            bad rows and the first of them.
    """
    if not isinstance(coords, Tensor):
        raise TypeError(
            f'coordinates must be a torch.Tensor of shape (N, 2) holding '
            f'(lon, lat) in degrees, got {type(coords).__name__}; '
            f'wrap arrays with torch.as_tensor(x, dtype=torch.float32)'
        )
    if not coords.is_floating_point():
        raise TypeError(
            f'coordinates must be a floating-point tensor (float32 or float64) '
            f'holding (lon, lat) in degrees, got dtype {coords.dtype}; '
            f'convert with coords.float()'
        )
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(
            f'coordinates must have shape (N, 2) holding (lon, lat) in degrees, '
            f'got shape {tuple(coords.shape)}'
        )
    lon, lat = coords[:, 0], coords[:, 1]
    bad = ~(torch.isfinite(coords).all(dim=1) & (lon.abs() <= 180) & (lat.abs() <= 90))
    if bool(bad.any()):
        count = int(bad.sum())
        first = int(bad.nonzero()[0, 0])
        lon0, lat0 = (float(v) for v in coords[first])
        hint = ''
        if abs(lon0) <= 90 < abs(lat0) <= 180:
            hint = ' (it looks like (lat, lon): satclip-tg expects (lon, lat))'
        raise ValueError(
            f'{count} of {coords.shape[0]} coordinate rows are invalid: each row '
            f'must be finite (lon, lat) in degrees with lon in [-180, 180] and '
            f'lat in [-90, 90]; first bad row is {first}: '
            f'(lon={lon0}, lat={lat0}){hint}'
        )
    return coords
