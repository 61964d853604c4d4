r"""Sphere2Vec encodings: ``spherec``, ``spherecplus``, ``spherem``, ``spheremplus``.

Mai et al., "Sphere2Vec: A general-purpose location representation learning
over a spherical surface for large-scale geospatial predictions", ISPRS Journal
of Photogrammetry and Remote Sensing, 2023.

The scales follow the convention of `.sinusoidal`: longitude $\lambda$ and
latitude $\varphi$ in radians, geometrically spaced radii $r_s$ between
``min_radius`` and ``max_radius`` (radians), scaled angles
$\lambda_s = \lambda / r_s$ and $\varphi_s = \varphi / r_s$, columns ordered
scale by scale, finest first. Every column is a distinct function: unlike the
SatCLIP reference implementation, no column is repeated.

If you use these encodings, please cite:

* https://arxiv.org/abs/2201.10489
"""

import math
from typing import ClassVar

import torch
from torch import Tensor

from .sinusoidal import DEFAULT_MIN_RADIUS, MultiScaleEncoding

__all__ = ['MixedScaleEncoding', 'SphereC', 'SphereCPlus', 'SphereM', 'SphereMPlus']

#: Default largest radius of ``spherem`` and ``spheremplus`` (a wavelength of
#: 180 degrees). It must not be 1: see `SphereM`.
DEFAULT_MAX_RADIUS_MIXED = 0.5

#: Relative distance to 1 below which a frequency counts as 1 in the mixed
#: encodings, whose columns would then coincide pairwise.
_UNIT_FREQUENCY_RTOL = 1e-6


def _check_no_unit_frequency(radii: list[float], name: str) -> None:
    """Reject a scale of radius 1, at which the mixed terms coincide.

    Args:
        radii: The radii of the scales, in radians.
        name: The encoding's registered name, for the message.

    Raises:
        ValueError: If a radius is within a relative 1e-6 of 1.
    """
    for s, radius in enumerate(radii):
        if math.isclose(radius, 1.0, rel_tol=_UNIT_FREQUENCY_RTOL):
            raise ValueError(
                f'{name}: scale {s} has radius {radius!r}, i.e. frequency 1, where '
                f'cos(lat_s) cos(lon) equals cos(lat) cos(lon_s) and '
                f'cos(lat_s) sin(lon) equals cos(lat) sin(lon_s) (duplicate '
                f'columns); choose min_radius and max_radius so that no scale is 1 '
                f'(e.g. max_radius={DEFAULT_MAX_RADIUS_MIXED})'
            )


class MixedScaleEncoding(MultiScaleEncoding):
    """Base of ``spherem`` and ``spheremplus``: no scale may have radius 1.

    Their products mix a scaled angle with an unscaled one, so at frequency 1
    pairs of columns coincide; the default ``max_radius`` is therefore 0.5.
    """

    #: Registered name, used in error messages.
    registered_name: ClassVar[str]

    def __init__(
        self,
        frequency_num: int = 16,
        min_radius: float = DEFAULT_MIN_RADIUS,
        max_radius: float = DEFAULT_MAX_RADIUS_MIXED,
    ) -> None:
        r"""Initialize the scales.

        Args:
            frequency_num: Number of scales $S$; the output has
                ``features_per_scale`` $\times S$ columns.
            min_radius: Smallest radius $r_{\min}$ in radians; the default
                $1/360$ gives a finest wavelength of 1 degree.
            max_radius: Largest radius $r_{\max}$ in radians; the default 0.5
                gives a coarsest wavelength of 180 degrees.

        Raises:
            ValueError: If ``frequency_num < 1``, a radius is not a positive
                finite number, ``min_radius >= max_radius``, or a scale has
                radius 1 (its columns would coincide pairwise).
        """
        super().__init__(frequency_num, min_radius, max_radius)
        _check_no_unit_frequency(self.radii, self.registered_name)


class SphereC(MultiScaleEncoding):
    r"""Sphere2Vec ``sphereC``: a multi-scale point on the unit sphere.

    Registered as ``spherec``. For every scale $s$:

    $$
    \mathrm{PE}_s(\lambda, \varphi) =
    (\sin\varphi_s,\ \cos\varphi_s\cos\lambda_s,\ \cos\varphi_s\sin\lambda_s),
    $$

    for $3S$ columns in all. At radius $r_s = 1$ (the default coarsest scale)
    the three columns are the Cartesian coordinates of the point on the unit
    sphere.

    Neither geometric property holds for all radii: the features are periodic
    in longitude only when every $1/r_s$ is an integer, and at the poles
    $\cos\varphi_s$ vanishes only when every $1/r_s$ is an odd integer.
    """

    periodic_in_longitude = False
    pole_invariant = False
    features_per_scale = 3

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 3 * frequency_num)`` tensor of the same dtype and device; per
            scale ``(sin lat_s, cos lat_s cos lon_s, cos lat_s sin lon_s)``.
        """
        lon_s, lat_s = self.scaled_angles(coords)
        cos_lat_s = torch.cos(lat_s)
        features = torch.stack(
            (
                torch.sin(lat_s),
                cos_lat_s * torch.cos(lon_s),
                cos_lat_s * torch.sin(lon_s),
            ),
            dim=-1,
        )
        return features.reshape(coords.shape[0], self.embedding_dim)


class SphereCPlus(MultiScaleEncoding):
    r"""Sphere2Vec ``sphereC+``: ``sphereC`` together with the Space2Vec grid.

    Registered as ``spherecplus``. For every scale $s$, the union of the
    ``grid`` terms and the ``sphereC`` terms, $\sin\varphi_s$ appearing once:

    $$
    \mathrm{PE}_s(\lambda, \varphi) =
    (\sin\varphi_s,\ \cos\varphi_s,\ \sin\lambda_s,\ \cos\lambda_s,\
    \cos\varphi_s\cos\lambda_s,\ \cos\varphi_s\sin\lambda_s),
    $$

    for $6S$ columns in all.

    Neither geometric property holds for all radii (see `SphereC`).
    """

    periodic_in_longitude = False
    pole_invariant = False
    features_per_scale = 6

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 6 * frequency_num)`` tensor of the same dtype and device; per
            scale ``(sin lat_s, cos lat_s, sin lon_s, cos lon_s,
            cos lat_s cos lon_s, cos lat_s sin lon_s)``.
        """
        lon_s, lat_s = self.scaled_angles(coords)
        cos_lat_s, sin_lon_s, cos_lon_s = (
            torch.cos(lat_s),
            torch.sin(lon_s),
            torch.cos(lon_s),
        )
        features = torch.stack(
            (
                torch.sin(lat_s),
                cos_lat_s,
                sin_lon_s,
                cos_lon_s,
                cos_lat_s * cos_lon_s,
                cos_lat_s * sin_lon_s,
            ),
            dim=-1,
        )
        return features.reshape(coords.shape[0], self.embedding_dim)


def _unscaled(coords: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``cos lat``, ``cos lon`` and ``sin lon`` as ``(N, 1)`` columns.

    Args:
        coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

    Returns:
        The three unscaled factors of the mixed Sphere2Vec terms.
    """
    rad = torch.deg2rad(coords)
    lon, lat = rad[:, :1], rad[:, 1:]
    return torch.cos(lat), torch.cos(lon), torch.sin(lon)


class SphereM(MixedScaleEncoding):
    r"""Sphere2Vec ``sphereM``: multi-scale terms mixed with single-scale ones.

    Registered as ``spherem``. In each product one of the two angles is
    scaled and the other is not; for every scale $s$:

    $$
    \mathrm{PE}_s(\lambda, \varphi) =
    (\sin\varphi_s,\ \cos\varphi_s\cos\lambda,\ \cos\varphi\cos\lambda_s,\
    \cos\varphi_s\sin\lambda,\ \cos\varphi\sin\lambda_s),
    $$

    for $5S$ columns in all. At a frequency $1/r_s = 1$ the second and third
    columns coincide, and so do the fourth and fifth; such radii are rejected,
    and the default ``max_radius`` is 0.5 rather than 1.

    Neither geometric property holds for all radii: the scaled longitude
    breaks periodicity unless every $1/r_s$ is an integer, and at the poles
    $\cos\varphi_s\cos\lambda$ depends on the longitude.
    """

    periodic_in_longitude = False
    pole_invariant = False
    features_per_scale = 5
    registered_name = 'spherem'

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 5 * frequency_num)`` tensor of the same dtype and device; per
            scale ``(sin lat_s, cos lat_s cos lon, cos lat cos lon_s,
            cos lat_s sin lon, cos lat sin lon_s)``.
        """
        lon_s, lat_s = self.scaled_angles(coords)
        cos_lat, cos_lon, sin_lon = _unscaled(coords)
        cos_lat_s = torch.cos(lat_s)
        features = torch.stack(
            (
                torch.sin(lat_s),
                cos_lat_s * cos_lon,
                cos_lat * torch.cos(lon_s),
                cos_lat_s * sin_lon,
                cos_lat * torch.sin(lon_s),
            ),
            dim=-1,
        )
        return features.reshape(coords.shape[0], self.embedding_dim)


class SphereMPlus(MixedScaleEncoding):
    r"""Sphere2Vec ``sphereM+``: ``sphereM`` together with the Space2Vec grid.

    Registered as ``spheremplus``. For every scale $s$, the union of the
    ``grid`` terms and the ``sphereM`` terms, $\sin\varphi_s$ appearing once:

    $$
    \mathrm{PE}_s(\lambda, \varphi) =
    (\sin\varphi_s,\ \cos\varphi_s,\ \sin\lambda_s,\ \cos\lambda_s,\
    \cos\varphi_s\cos\lambda,\ \cos\varphi\cos\lambda_s,\
    \cos\varphi_s\sin\lambda,\ \cos\varphi\sin\lambda_s),
    $$

    for $8S$ columns in all. As for `SphereM`, a scale of radius 1 is
    rejected and the default ``max_radius`` is 0.5.

    Neither geometric property holds for all radii (see `SphereM`).
    """

    periodic_in_longitude = False
    pole_invariant = False
    features_per_scale = 8
    registered_name = 'spheremplus'

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 8 * frequency_num)`` tensor of the same dtype and device; per
            scale ``(sin lat_s, cos lat_s, sin lon_s, cos lon_s,
            cos lat_s cos lon, cos lat cos lon_s, cos lat_s sin lon,
            cos lat sin lon_s)``.
        """
        lon_s, lat_s = self.scaled_angles(coords)
        cos_lat, cos_lon, sin_lon = _unscaled(coords)
        cos_lat_s, sin_lon_s, cos_lon_s = (
            torch.cos(lat_s),
            torch.sin(lon_s),
            torch.cos(lon_s),
        )
        features = torch.stack(
            (
                torch.sin(lat_s),
                cos_lat_s,
                sin_lon_s,
                cos_lon_s,
                cos_lat_s * cos_lon,
                cos_lat * cos_lon_s,
                cos_lat_s * sin_lon,
                cos_lat * sin_lon_s,
            ),
            dim=-1,
        )
        return features.reshape(coords.shape[0], self.embedding_dim)
