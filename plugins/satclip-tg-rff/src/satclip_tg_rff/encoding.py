r"""GeoCLIP-style multi-scale random Fourier features.

GeoCLIP (Vivanco Cepeda et al., NeurIPS 2023) encodes a location by projecting
it to the plane with the Equal Earth projection and feeding the projected point
to random Fourier features (Tancik et al., NeurIPS 2020) at several scales.
This module implements both parts from their published formulas.

**Equal Earth** (Šavrič, Patterson and Jenny 2018) maps longitude $\lambda$ and
latitude $\varphi$ (radians) on the unit sphere to

$$
\sin\theta = \tfrac{\sqrt{3}}{2} \sin\varphi, \qquad
x = \frac{2\sqrt{3}\, \lambda \cos\theta}
{3\,(9 A_4 \theta^8 + 7 A_3 \theta^6 + 3 A_2 \theta^2 + A_1)}, \qquad
y = A_4 \theta^9 + A_3 \theta^7 + A_2 \theta^3 + A_1 \theta,
$$

with $A_1 = 1.340264$, $A_2 = -0.081106$, $A_3 = 0.000893$ and
$A_4 = 0.003796$. It is an equal-area projection: the Jacobian determinant
$\partial(x, y) / \partial(\lambda, \varphi)$ is exactly $\cos\varphi$.

**Random Fourier features** of a point $\mathbf{p} \in \mathbb{R}^2$ at the
scale $\sigma$ are

$$
\gamma_\sigma(\mathbf{p}) = \left(\cos 2\pi B_\sigma \mathbf{p},\
\sin 2\pi B_\sigma \mathbf{p}\right), \qquad
B_\sigma = \sigma Z,\quad Z_{ij} \sim \mathcal{N}(0, 1),
$$

with $Z$ an $m \times 2$ matrix drawn once. Their inner products approximate a
Gaussian kernel:
$\frac{1}{m} \langle \gamma_\sigma(\mathbf{p}), \gamma_\sigma(\mathbf{q})
\rangle \approx \exp(-2\pi^2\sigma^2 \lVert \mathbf{p} - \mathbf{q}
\rVert^2)$, so a small $\sigma$ gives smooth, global features and a large one
fine, local detail.
"""

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

from satclip_tg.location.encodings.base import PositionalEncoding

__all__ = [
    'EQUAL_EARTH_COEFFICIENTS',
    'GEOCLIP_SCALE',
    'Projection',
    'RandomFourierFeatures',
    'equal_earth',
]

#: The Equal Earth polynomial coefficients $(A_1, A_2, A_3, A_4)$.
EQUAL_EARTH_COEFFICIENTS = (1.340264, -0.081106, 0.000893, 0.003796)

#: GeoCLIP's normalisation of the projected unit-sphere coordinates,
#: $\mathrm{SF} / 180$ with $\mathrm{SF} = 66.50336$: it maps the Equal Earth
#: equator, $x \in [-2.70663, 2.70663]$, to $[-1, 1]$ (to within $10^{-5}$).
GEOCLIP_SCALE = 66.50336 / 180

#: How (lon, lat) is mapped to the plane before the Fourier features.
Projection = Literal['equal_earth', 'plate_carree']


def equal_earth(coords: Tensor) -> Tensor:
    r"""Project (lon, lat) degrees with Equal Earth onto the unit-sphere plane.

    Args:
        coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

    Returns:
        ``(N, 2)`` tensor of $(x, y)$ in the dtype and on the device of
        ``coords``: $x \in [-2.7066, 2.7066]$, $y \in [-1.3174, 1.3174]$.
    """
    a1, a2, a3, a4 = EQUAL_EARTH_COEFFICIENTS
    lon, lat = torch.deg2rad(coords).unbind(dim=1)
    theta = torch.asin(math.sqrt(3) / 2 * torch.sin(lat))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    x = (
        2
        * math.sqrt(3)
        * lon
        * torch.cos(theta)
        / (3 * (a1 + 3 * a2 * t2 + t6 * (7 * a3 + 9 * a4 * t2)))
    )
    y = theta * (a1 + a2 * t2 + t6 * (a3 + a4 * t2))
    return torch.stack((x, y), dim=1)


class RandomFourierFeatures(PositionalEncoding):
    r"""Multi-scale random Fourier features of projected coordinates (``rff``).

    A point is first mapped to the plane,

    * ``projection='equal_earth'`` (GeoCLIP): $\mathbf{p} = s\,(x, y)$, the
      Equal Earth coordinates times GeoCLIP's $s = 66.50336 / 180$, so that
      $x \in [-1, 1]$ and $y \in [-0.487, 0.487]$;
    * ``projection='plate_carree'``: $\mathbf{p} = (\lambda, \varphi) / 180°$,
      the same span of $[-1, 1]$ along the equator, without the equal-area
      distortion;

    then encoded at every scale $\sigma_k$ in ``sigmas`` as
    $(\cos 2\pi B_k \mathbf{p}, \sin 2\pi B_k \mathbf{p})$ with
    $B_k = \sigma_k Z_k$ and $Z_k$ an $m \times 2$ standard normal matrix
    ($m$ = ``num_frequencies``). The scales are concatenated in the order of
    ``sigmas``, each as its $m$ cosines followed by its $m$ sines, for
    $2 m K$ columns in all ($K$ scales). GeoCLIP's defaults are
    $\sigma \in \{2^0, 2^4, 2^8\}$ and $m = 256$: 1536 columns. (GeoCLIP then
    gives each scale its own MLP and sums their outputs; here the scales are
    concatenated and the network is chosen separately.)

    The matrices $B_k$ are drawn from ``seed`` and stored in the persistent
    buffer ``frequencies`` (shape $(K, m, 2)$, float64), so a state dict
    carries them: an encoding built with another seed reproduces the saved one
    after ``load_state_dict``. They are cast to the input dtype at each call.

    Neither geometric property holds: lon = -180 and lon = 180 are different
    points of both projections (the map has two edges), and the poles are lines
    of the map, so the features at a pole depend on the longitude. Float32
    input loses phase precision at large $\sigma$ (of order $10^{-4}$ rad for
    $\sigma = 256$); pass float64 coordinates where that matters.

    If you use this encoding, please cite:

    * https://arxiv.org/abs/2309.16020 (GeoCLIP)
    * https://arxiv.org/abs/2006.10739 (random Fourier features)
    * https://doi.org/10.1080/13658816.2018.1504949 (Equal Earth)
    """

    periodic_in_longitude = False
    pole_invariant = False

    #: The scaled random frequencies $B_k$, shape ``(K, m, 2)``, float64.
    frequencies: Tensor

    def __init__(
        self,
        sigmas: Sequence[float] = (1.0, 16.0, 256.0),
        num_frequencies: int = 256,
        projection: Projection = 'equal_earth',
        seed: int = 0,
    ) -> None:
        r"""Initialize the encoding and draw its random frequencies.

        Args:
            sigmas: The scales $\sigma_k$, positive and finite, one per group
                of features; larger values resolve finer detail (GeoCLIP:
                $2^0, 2^4, 2^8$).
            num_frequencies: Number $m$ of random frequencies per scale; each
                gives a cosine and a sine column.
            projection: ``'equal_earth'`` (GeoCLIP) or ``'plate_carree'``.
            seed: Seed of the random frequencies.

        Raises:
            ValueError: If ``sigmas`` is empty or holds a non-positive or
                non-finite value, ``num_frequencies < 1``, ``projection`` is
                unknown or ``seed`` is not an integer.
        """
        super().__init__()
        if isinstance(sigmas, str) or not isinstance(sigmas, Sequence) or not sigmas:
            raise ValueError(
                f'sigmas must be a non-empty list of scales, got {sigmas!r}'
            )
        for sigma in sigmas:
            if (
                isinstance(sigma, bool)
                or not isinstance(sigma, int | float)
                or not math.isfinite(sigma)
                or sigma <= 0
            ):
                raise ValueError(
                    f'every sigma must be a positive finite number, got {sigma!r} '
                    f'in {list(sigmas)!r}'
                )
        if (
            isinstance(num_frequencies, bool)
            or not isinstance(num_frequencies, int)
            or num_frequencies < 1
        ):
            raise ValueError(
                f'num_frequencies must be an integer >= 1, got {num_frequencies!r}'
            )
        if projection not in get_args(Projection):
            raise ValueError(
                f'projection must be one of {get_args(Projection)}, got {projection!r}'
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f'seed must be an integer, got {seed!r}')
        self.sigmas = [float(sigma) for sigma in sigmas]
        self.num_frequencies = num_frequencies
        self.projection = projection
        self.seed = seed
        self.embedding_dim = 2 * num_frequencies * len(self.sigmas)
        generator = torch.Generator().manual_seed(seed)
        normal = torch.randn(
            len(self.sigmas),
            num_frequencies,
            2,
            generator=generator,
            dtype=torch.float64,
        )
        scales = torch.tensor(self.sigmas, dtype=torch.float64)
        self.register_buffer('frequencies', normal * scales[:, None, None])

    def project(self, coords: Tensor) -> Tensor:
        r"""Map validated coordinates to the plane the features are computed on.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 2)`` projected points $\mathbf{p}$, same dtype and device.
        """
        if self.projection == 'equal_earth':
            return equal_earth(coords) * GEOCLIP_SCALE
        return coords / 180

    def encode(self, coords: Tensor) -> Tensor:
        """Encode validated coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, 2 * num_frequencies * len(sigmas))`` tensor of the same dtype
            and device; per scale, the cosines then the sines.
        """
        points = self.project(coords)
        frequencies = self.frequencies.to(dtype=coords.dtype, device=coords.device)
        # (N, K, m): 2 pi B_k p for every scale k.
        angles = 2 * math.pi * torch.einsum('nd,kmd->nkm', points, frequencies)
        features = torch.cat((torch.cos(angles), torch.sin(angles)), dim=2)
        return features.reshape(coords.shape[0], self.embedding_dim)

    def extra_repr(self) -> str:
        """Summarize the hyperparameters.

        Returns:
            The hyperparameters and the output dimension.
        """
        sigmas = ', '.join(f'{sigma:g}' for sigma in self.sigmas)
        return (
            f'sigmas=[{sigmas}], num_frequencies={self.num_frequencies}, '
            f'projection={self.projection!r}, seed={self.seed}, '
            f'embedding_dim={self.embedding_dim}'
        )
