"""Single-scale encodings without hyperparameters: ``direct`` and ``cartesian3d``."""

import math

import torch
from torch import Tensor

from .base import PositionalEncoding

__all__ = ['Cartesian3D', 'Direct']


class Direct(PositionalEncoding):
    r"""The coordinates themselves, in radians, shifted by $-\pi$ (``direct``).

    $$
    \mathrm{PE}(\lambda, \varphi) = (\lambda - \pi,\ \varphi - \pi)
    $$

    with longitude $\lambda$ and latitude $\varphi$ in radians. This is the
    definition of the SatCLIP reference implementation, kept as is: the outputs
    lie in $[-2\pi, 0]$ (longitude) and $[-3\pi/2, -\pi/2]$ (latitude). The
    constant shift carries no information; the bias of the network's first layer
    can absorb it.

    The features at lon = -180 and lon = +180 differ, and at the poles they
    depend on the longitude: neither geometric property holds.
    """

    periodic_in_longitude = False
    pole_invariant = False

    def __init__(self) -> None:
        """Initialize the encoding (it has no hyperparameters)."""
        super().__init__()
        self.embedding_dim = 2

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 2)`` tensor ``(radians(lon) - pi, radians(lat) - pi)`` of the
            same dtype and device.
        """
        return torch.deg2rad(coords) - math.pi


class Cartesian3D(PositionalEncoding):
    r"""The point on the unit sphere in Earth-centred Cartesian coordinates.

    Registered as ``cartesian3d``:

    $$
    \mathrm{PE}(\lambda, \varphi) =
    (\cos\lambda\cos\varphi,\ \sin\lambda\cos\varphi,\ \sin\varphi)
    $$

    with longitude $\lambda$ and latitude $\varphi$ in radians. $\cos\varphi$ is
    evaluated as $\sin(\pi/2 - |\varphi|)$, which is exactly zero at both poles,
    so the features there are exactly $(0, 0, \pm 1)$ whatever the longitude.

    The encoding is periodic in longitude and invariant to longitude at the
    poles.
    """

    periodic_in_longitude = True
    pole_invariant = True

    def __init__(self) -> None:
        """Initialize the encoding (it has no hyperparameters)."""
        super().__init__()
        self.embedding_dim = 3

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 3)`` tensor of unit vectors ``(x, y, z)`` of the same dtype
            and device.
        """
        lon = torch.deg2rad(coords[:, 0])
        lat_deg = coords[:, 1]
        cos_lat = torch.sin(torch.deg2rad(90 - lat_deg.abs()))
        sin_lat = torch.sin(torch.deg2rad(lat_deg))
        return torch.stack(
            (torch.cos(lon) * cos_lat, torch.sin(lon) * cos_lat, sin_lat), dim=-1
        )
