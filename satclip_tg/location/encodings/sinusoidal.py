r"""Sinusoidal encodings: ``wrap`` and the Space2Vec ``grid`` and ``theory``.

The multi-scale encodings here and in `.sphere2vec` share one convention.
Longitude $\lambda$ and latitude $\varphi$ are in **radians**. Scale
$s = 0, \dots, S-1$ (``S = frequency_num``) has the angular radius

$$
r_s = r_{\min} \left(\frac{r_{\max}}{r_{\min}}\right)^{s/(S-1)}
$$

(geometric spacing, as in Space2Vec and Sphere2Vec; for $S = 1$ the single
radius is $r_{\max}$) and the frequency $\omega_s = 1 / r_s$, and the scaled
angles are $\lambda_s = \omega_s \lambda$ and $\varphi_s = \omega_s \varphi$.
``min_radius`` and ``max_radius`` are these radii $r_{\min}$ and $r_{\max}$, in
radians: the sinusoid of scale $s$ has a wavelength of $2\pi r_s$ radians, that
is $360\, r_s$ degrees. Columns are ordered scale by scale, finest first.
"""

import math
from typing import ClassVar

import torch
from torch import Tensor

from .base import PositionalEncoding

__all__ = [
    'MultiScaleEncoding',
    'Space2VecGrid',
    'Space2VecTheory',
    'Wrap',
    'geometric_radii',
]

#: Default smallest radius: a wavelength of 1 degree (about 111 km at the equator).
DEFAULT_MIN_RADIUS = 1 / 360
#: Default largest radius: a wavelength of a full circle (360 degrees).
DEFAULT_MAX_RADIUS = 1.0


def geometric_radii(
    frequency_num: int, min_radius: float, max_radius: float
) -> list[float]:
    """Validate the scale hyperparameters and return the geometric radii.

    Args:
        frequency_num: Number of scales ``S``, at least 1.
        min_radius: Smallest radius in radians, positive and finite.
        max_radius: Largest radius in radians, finite and larger than
            ``min_radius``.

    Returns:
        The ``S`` radii from ``min_radius`` to ``max_radius`` (both included),
        geometrically spaced; ``[max_radius]`` when ``S = 1``.

    Raises:
        ValueError: If an argument is out of range or of the wrong type.
    """
    if (
        isinstance(frequency_num, bool)
        or not isinstance(frequency_num, int)
        or frequency_num < 1
    ):
        raise ValueError(
            f'frequency_num (the number of scales) must be an integer >= 1, '
            f'got {frequency_num!r}'
        )
    for name, value in (('min_radius', min_radius), ('max_radius', max_radius)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(
                f'{name} must be a positive finite number (an angle in radians), '
                f'got {value!r}'
            )
    if min_radius >= max_radius:
        raise ValueError(
            f'min_radius must be smaller than max_radius, got '
            f'min_radius={min_radius!r} and max_radius={max_radius!r}'
        )
    if frequency_num == 1:
        return [float(max_radius)]
    ratio = max_radius / min_radius
    radii = [
        min_radius * ratio ** (s / (frequency_num - 1)) for s in range(frequency_num)
    ]
    radii[-1] = float(max_radius)
    return radii


class MultiScaleEncoding(PositionalEncoding):
    """Base of the multi-scale sinusoidal encodings (not registered itself).

    Subclasses set `features_per_scale` and implement `encode`,
    using `scaled_angles` for the per-scale angles. The frequencies live
    in a non-persistent buffer, so ``.to(device)`` moves them; they are cast to
    the dtype of the input at every call.
    """

    #: Number of output columns per scale.
    features_per_scale: ClassVar[int]

    #: Frequencies per degree of input, ``omega_s * pi / 180``, shape ``(S,)``.
    frequencies: Tensor

    def __init__(
        self,
        frequency_num: int = 16,
        min_radius: float = DEFAULT_MIN_RADIUS,
        max_radius: float = DEFAULT_MAX_RADIUS,
    ) -> None:
        r"""Initialize the scales.

        Args:
            frequency_num: Number of scales $S$; the output has
                ``features_per_scale`` $\times S$ columns.
            min_radius: Smallest radius $r_{\min}$ in radians; the default
                $1/360$ gives a finest wavelength of 1 degree.
            max_radius: Largest radius $r_{\max}$ in radians; the default 1
                gives a coarsest wavelength of a full circle.

        Raises:
            ValueError: If ``frequency_num < 1``, a radius is not a positive
                finite number, or ``min_radius >= max_radius``.
        """
        super().__init__()
        self.radii = geometric_radii(frequency_num, min_radius, max_radius)
        self.frequency_num = frequency_num
        self.min_radius = float(min_radius)
        self.max_radius = float(max_radius)
        self.embedding_dim = self.features_per_scale * frequency_num
        per_degree = [math.pi / 180 / r for r in self.radii]
        self.register_buffer(
            'frequencies',
            torch.tensor(per_degree, dtype=torch.float64),
            persistent=False,
        )

    def scaled_frequencies(self, like: Tensor) -> Tensor:
        """Return the per-degree frequencies in the dtype and device of ``like``.

        Args:
            like: Tensor whose dtype and device to use.

        Returns:
            ``(S,)`` tensor of ``omega_s * pi / 180``.
        """
        return self.frequencies.to(dtype=like.dtype, device=like.device)

    def scaled_angles(self, coords: Tensor) -> tuple[Tensor, Tensor]:
        """Return the scaled angles of each coordinate.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(lon_s, lat_s)``, each ``(N, S)``: ``omega_s`` times the longitude
            (resp. latitude) in radians.
        """
        freq = self.scaled_frequencies(coords)
        return coords[:, :1] * freq, coords[:, 1:] * freq

    def extra_repr(self) -> str:
        """Summarize the hyperparameters.

        Returns:
            The hyperparameters and the output dimension.
        """
        return (
            f'frequency_num={self.frequency_num}, min_radius={self.min_radius:g}, '
            f'max_radius={self.max_radius:g}, embedding_dim={self.embedding_dim}'
        )


class Wrap(PositionalEncoding):
    r"""Sine and cosine of longitude and latitude (``wrap``, Mac Aodha et al. 2019).

    $$
    \mathrm{PE}(\lambda, \varphi) =
    (\cos\lambda,\ \sin\lambda,\ \cos\varphi,\ \sin\varphi)
    $$

    with longitude $\lambda$ and latitude $\varphi$ in radians; 4 columns. The
    encoding is periodic in longitude; at the poles it still depends on the
    longitude.

    If you use this encoding, please cite:

    * https://arxiv.org/abs/1906.05272
    """

    periodic_in_longitude = True
    pole_invariant = False

    def __init__(self) -> None:
        """Initialize the encoding (it has no hyperparameters)."""
        super().__init__()
        self.embedding_dim = 4

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 4)`` tensor ``(cos lon, sin lon, cos lat, sin lat)`` of the
            same dtype and device.
        """
        rad = torch.deg2rad(coords)
        lon, lat = rad[:, 0], rad[:, 1]
        return torch.stack(
            (torch.cos(lon), torch.sin(lon), torch.cos(lat), torch.sin(lat)), dim=-1
        )


class Space2VecGrid(MultiScaleEncoding):
    r"""Space2Vec ``grid``: multi-scale sinusoids of longitude and latitude.

    Registered as ``grid`` (Mai et al., ICLR 2020). For every scale $s$:

    $$
    \mathrm{PE}_s(\lambda, \varphi) =
    (\sin\lambda_s,\ \cos\lambda_s,\ \sin\varphi_s,\ \cos\varphi_s),
    \qquad \lambda_s = \lambda / r_s,\ \varphi_s = \varphi / r_s,
    $$

    with $\lambda, \varphi$ in radians and geometrically spaced radii $r_s$
    (see `satclip_tg.location.encodings.sinusoidal`); the scales are
    concatenated, finest first, for $4S$ columns.

    Neither geometric property holds in general: $\sin(\pi / r_s) \ne
    \sin(-\pi / r_s)$ unless $1 / r_s$ is an integer, and at the poles the
    features depend on the longitude.

    If you use this encoding, please cite:

    * https://arxiv.org/abs/2003.00824
    """

    periodic_in_longitude = False
    pole_invariant = False
    features_per_scale = 4

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 4 * frequency_num)`` tensor of the same dtype and device;
            per scale ``(sin lon_s, cos lon_s, sin lat_s, cos lat_s)``.
        """
        # (N, S, 2): the scaled (lon, lat) angles.
        angles = coords[:, None, :] * self.scaled_frequencies(coords)[None, :, None]
        # (N, S, 2, 2) -> (N, 4S)
        features = torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1)
        return features.reshape(coords.shape[0], self.embedding_dim)


class Space2VecTheory(MultiScaleEncoding):
    r"""Space2Vec ``theory``: sinusoids along three directions 120 degrees apart.

    Registered as ``theory`` (Mai et al., ICLR 2020). The point
    $\mathbf{x} = (\lambda, \varphi)$ (radians) is projected onto the unit
    vectors $\mathbf{a}_1 = (1, 0)$, $\mathbf{a}_2 = (-1/2, \sqrt{3}/2)$ and
    $\mathbf{a}_3 = (-1/2, -\sqrt{3}/2)$; for every scale $s$:

    $$
    \mathrm{PE}_s(\mathbf{x}) = \bigcup_{j=1}^{3}
    \left(\sin\frac{\langle \mathbf{x}, \mathbf{a}_j \rangle}{r_s},\
    \cos\frac{\langle \mathbf{x}, \mathbf{a}_j \rangle}{r_s}\right),
    $$

    in the order $j = 1, 2, 3$, for $6S$ columns in all (scales finest first).

    Neither geometric property holds in general: a shift of $2\pi$ in
    longitude moves the projections by $2\pi$ or $-\pi$, so the features are
    periodic in longitude only when every $1/r_s$ is an even integer, and at
    the poles they depend on the longitude.

    If you use this encoding, please cite:

    * https://arxiv.org/abs/2003.00824
    """

    periodic_in_longitude = False
    pole_invariant = False
    features_per_scale = 6

    #: The three unit vectors as rows, shape ``(3, 2)``.
    directions: Tensor

    def __init__(
        self,
        frequency_num: int = 16,
        min_radius: float = DEFAULT_MIN_RADIUS,
        max_radius: float = DEFAULT_MAX_RADIUS,
    ) -> None:
        """Initialize the scales and the three directions.

        Args:
            frequency_num: Number of scales $S$; the output has $6S$ columns.
            min_radius: Smallest radius in radians (see `MultiScaleEncoding`).
            max_radius: Largest radius in radians (see `MultiScaleEncoding`).
        """
        super().__init__(frequency_num, min_radius, max_radius)
        half_sqrt3 = math.sqrt(3) / 2
        directions = [[1.0, 0.0], [-0.5, half_sqrt3], [-0.5, -half_sqrt3]]
        self.register_buffer(
            'directions',
            torch.tensor(directions, dtype=torch.float64),
            persistent=False,
        )

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 6 * frequency_num)`` tensor of the same dtype and device;
            per scale ``(sin p1, cos p1, sin p2, cos p2, sin p3, cos p3)`` with
            ``p_j`` the scaled projection onto the j-th unit vector.
        """
        directions = self.directions.to(dtype=coords.dtype, device=coords.device)
        # (N, 3): projections in degrees; the frequencies convert to radians.
        projections = coords @ directions.T
        # (N, S, 3)
        angles = (
            projections[:, None, :] * self.scaled_frequencies(coords)[None, :, None]
        )
        # (N, S, 3, 2) -> (N, 6S)
        features = torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1)
        return features.reshape(coords.shape[0], self.embedding_dim)
