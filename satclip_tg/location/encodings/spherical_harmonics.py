"""Real spherical harmonics, in the convention of the released SatCLIP weights."""

import math
from typing import ClassVar, Literal

import torch
from torch import Tensor

from ._output_memory import ReusableOutputMemory
from ._spherical_harmonics_kernels import (
    Tables,
    harmonics_numba,
    harmonics_numba_into,
    harmonics_torch,
    numba_available,
)
from .base import PositionalEncoding

__all__ = ['LinearRowFactorization', 'SphericalHarmonics']

Convention = Literal['satclip', 'orthonormal']
Backend = Literal['auto', 'numba', 'torch']

# (x_sign, phi_offset, m0_scale) of each convention; see the class docstring.
_CONVENTIONS: dict[str, tuple[float, float, float]] = {
    'satclip': (-1.0, math.pi, math.pi),
    'orthonormal': (1.0, 0.0, 1.0),
}


class SphericalHarmonics(PositionalEncoding):
    r"""Real spherical harmonics up to degree ``legendre_polys - 1``.

    Output column ``l^2 + l + m`` holds the harmonic of degree ``l`` and order
    ``m``, for ``l = 0..L-1`` and ``m = -l..l``: ``L^2`` columns in all (100 for
    L = 10, 1600 for L = 40).

    ``convention='satclip'`` (default) reproduces the released SatCLIP weights
    and `torchgeo.models.SatCLIP` exactly:

    * $\theta$ = radians(lat + 90), measured from the *south* pole, and
      $\phi$ = radians(lon + 180);
    * $m > 0$: $\sqrt2\,\bar P_l^m(\cos\theta)\cos(m\phi)$;
      $m < 0$: $\sqrt2\,\bar P_l^{|m|}(\cos\theta)\sin(|m|\phi)$;
      $m = 0$: $\pi\,\bar P_l^0(\cos\theta)$;
    * $\bar P_l^m = \sqrt{\frac{2l+1}{4\pi}\frac{(l-m)!}{(l+m)!}} P_l^m$
      without the Condon-Shortley phase.

    This equals $(-1)^l$ times the textbook orthonormal real harmonics,
    with the ``m = 0`` columns multiplied by $\pi$ (an upstream typo that
    every SatCLIP model is trained with). ``convention='orthonormal'`` gives the
    textbook functions: colatitude from the north pole, $\phi$ = lon, no
    $\pi$ factor; they are orthonormal on the unit sphere.

    Accuracy: the result is computed in float64 and rounded once, so float32
    output is within about 3e-7 of the exact value for L = 40, and float64
    output within 1e-12 up to L = 100 and beyond. Values and coordinate
    gradients are finite everywhere, poles and antimeridian included; no
    latitude clamp is applied.

    Speed: on CPU without autograd a fused multi-threaded kernel (numba) is
    used; on other devices, or when gradients with respect to the coordinates
    are needed, a torch implementation of the same recurrence is used. Large
    CPU outputs (32 MB to 1 GB) are written into the memory of the previous
    output once every reference to that output has been dropped, which saves
    the page faults of a fresh allocation on repeated calls; outputs still in
    use are never touched. ``reuse_output_memory=False`` turns this off.
    """

    periodic_in_longitude: ClassVar[bool] = True
    pole_invariant: ClassVar[bool] = True

    def __init__(
        self,
        legendre_polys: int = 10,
        convention: Convention = 'satclip',
        backend: Backend = 'auto',
        reuse_output_memory: bool = True,
    ) -> None:
        """Initialize the encoding.

        Args:
            legendre_polys: Number of degrees L; the output has ``L^2`` features.
                Released SatCLIP models use 10 or 40.
            convention: ``'satclip'`` for the released-weights convention,
                ``'orthonormal'`` for textbook orthonormal real harmonics.
            backend: ``'auto'`` picks the compiled kernel on CPU when no
                coordinate gradient is needed and torch otherwise; ``'numba'``
                and ``'torch'`` force one (``'numba'`` still falls back to torch
                where it cannot run: other devices, autograd).
            reuse_output_memory: Let the CPU kernel write into the memory of
                an earlier output that is no longer referenced anywhere (keeps
                at most one output of up to 1 GB alive between calls).

        Raises:
            ValueError: If an argument is out of range or unknown.
        """
        super().__init__()
        if (
            isinstance(legendre_polys, bool)
            or not isinstance(legendre_polys, int)
            or legendre_polys < 1
        ):
            raise ValueError(
                f'legendre_polys must be a positive integer, got {legendre_polys!r}'
            )
        if convention not in _CONVENTIONS:
            raise ValueError(
                f'convention must be one of {sorted(_CONVENTIONS)}, got {convention!r}'
            )
        if backend not in ('auto', 'numba', 'torch'):
            raise ValueError(
                f"backend must be 'auto', 'numba' or 'torch', got {backend!r}"
            )
        self.legendre_polys = legendre_polys
        self.convention: Convention = convention
        self.backend: Backend = backend
        self.embedding_dim = legendre_polys * legendre_polys
        self.reuse_output_memory = reuse_output_memory
        self._tables = Tables(legendre_polys)
        self._output_memory = ReusableOutputMemory()

    @property
    def tables(self) -> Tables:
        """Recurrence coefficients of the Legendre functions (float64)."""
        return self._tables

    @property
    def convention_parameters(self) -> tuple[float, float, float]:
        """``(x_sign, phi_offset, m0_scale)`` of the convention.

        ``x_sign`` is ``-1`` when theta is measured from the south pole,
        ``phi_offset`` is added to the longitude in radians, and ``m0_scale``
        multiplies the ``m = 0`` columns.
        """
        return _CONVENTIONS[self.convention]

    def encode_into(self, coords: Tensor, out: Tensor) -> None:
        """Write the harmonics into an existing CPU tensor (no autograd).

        The fast path of `satclip_tg.embedding.embed_points` (see
        ``docs/networks.md``). Uses the compiled kernel (the torch
        implementation with ``backend='torch'`` or without numba). The
        coordinates are read in float64 whatever their dtype and the result
        is rounded once to ``out``'s dtype, so float64 coordinates with a
        float32 ``out`` lose nothing to rounding the coordinates first. The
        coordinates are not validated here.

        Args:
            coords: ``(N, 2)`` CPU float tensor of (lon, lat) in degrees.
            out: ``(N, L^2)`` C-contiguous CPU float32 or float64 tensor.
        """
        if self.backend != 'torch' and numba_available():
            harmonics_numba_into(
                coords, self._tables, *self.convention_parameters, out=out
            )
            return
        radians = torch.deg2rad(coords.detach().to(torch.float64))
        out.copy_(
            harmonics_torch(
                radians[:, 0], radians[:, 1], self._tables, *self.convention_parameters
            )
        )

    def factorize_linear(self, weight: Tensor) -> 'LinearRowFactorization':
        """Factorise a linear map of the harmonics by latitude and longitude.

        Args:
            weight: ``(K, L^2)`` weights of a linear map of the harmonics, e.g.
                the first layer of the network that follows.

        Returns:
            The factorisation (see `LinearRowFactorization`).
        """
        return LinearRowFactorization(self, weight)

    def encode(self, coords: Tensor) -> Tensor:
        """Evaluate the harmonics.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, L^2)`` tensor in the dtype of ``coords``.
        """
        x_sign, phi_offset, m0_scale = self.convention_parameters
        if self._use_numba(coords):
            memory = self._output_memory if self.reuse_output_memory else None
            return harmonics_numba(
                coords, self._tables, x_sign, phi_offset, m0_scale, memory
            )
        radians = torch.deg2rad(coords.to(torch.float64))
        features = harmonics_torch(
            radians[:, 0], radians[:, 1], self._tables, x_sign, phi_offset, m0_scale
        )
        return features.to(coords.dtype)

    def _use_numba(self, coords: Tensor) -> bool:
        if self.backend == 'torch' or coords.device.type != 'cpu':
            return False
        if coords.dtype not in (torch.float32, torch.float64):
            return False
        if coords.requires_grad and torch.is_grad_enabled():
            return False
        return numba_available()

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``repr``."""
        return (
            f'legendre_polys={self.legendre_polys}, convention={self.convention!r}, '
            f'embedding_dim={self.embedding_dim}'
        )


class LinearRowFactorization:
    r"""A linear map of the harmonics, evaluated row by row on regular grids.

    Each harmonic factorises into a latitude part and a longitude part,

    $$Y_l^m(\lambda, \varphi) = A_l^m(\varphi)\, T_m(\lambda),$$

    with $A_l^m = \sqrt2\,\bar P_l^{|m|}$ ($m \ne 0$) or
    $m_0\,\bar P_l^0$ ($m = 0$; $m_0 = \pi$ in the SatCLIP convention) and
    $T_m = \cos(m\phi)$ ($m > 0$), $\sin(|m|\phi)$ ($m < 0$), $1$ ($m = 0$).
    So a linear map $W$ (e.g. the first layer of a network) gives, for output $k$,

    $$\sum_{l,m} W_{k,lm} Y_l^m(\lambda, \varphi)
      = \sum_{m=-(L-1)}^{L-1} T_m(\lambda) \underbrace{\sum_{l \ge |m|}
      W_{k,lm} A_l^m(\varphi)}_{C_{k,m}(\varphi)} .$$

    On a regular grid every row of cells shares one latitude and every column
    one longitude: `row_coefficients` computes $C(\varphi)$ once per row,
    `column_terms` $T(\lambda)$ once per column, and each cell costs
    $2L - 1$ multiply-adds per output instead of $L^2$, with no harmonics
    evaluated per cell. The result is exact up to floating-point rounding.
    Both parts are float64, on the device of the weight.
    """

    def __init__(self, encoding: SphericalHarmonics, weight: Tensor) -> None:
        """Prepare the factorisation.

        Args:
            encoding: The harmonics.
            weight: ``(K, L^2)`` weights of the linear map.

        Raises:
            ValueError: If ``weight`` does not have ``L^2`` columns.
        """
        degrees = encoding.legendre_polys
        size = degrees * degrees
        if weight.ndim != 2 or weight.shape[1] != size:
            raise ValueError(
                f'weight must have shape (K, {size}), got {tuple(weight.shape)}'
            )
        self.encoding = encoding
        self.legendre_polys = degrees
        self.device = weight.device
        # Features are ordered l^2 + l + m. Group j = m + L - 1 collects the
        # degrees l = |m|..L-1 of order m; groups are padded to L entries with
        # index L^2, a zero column, so that one batched product serves them all.
        padded = [
            [d * d + d + m for d in range(abs(m), degrees)] + [size] * abs(m)
            for m in range(-(degrees - 1), degrees)
        ]
        self._padded = torch.tensor(padded, device=self.device)  # (2L-1, L)
        wide = weight.detach().to(torch.float64)
        wide = torch.cat([wide, wide.new_zeros(wide.shape[0], 1)], dim=1)
        # (2L-1, L, K): the weights of each group.
        self._group_weights = wide[:, self._padded].permute(1, 2, 0).contiguous()
        self._mirror = torch.tensor(
            [d * d + d + abs(m) for d in range(degrees) for m in range(-d, d + 1)]
            + [size],
            device=self.device,
        )

    @property
    def num_terms(self) -> int:
        """Number of longitude terms, $2L - 1$."""
        return 2 * self.legendre_polys - 1

    def latitude_factors(self, latitudes: Tensor, pad: bool = False) -> Tensor:
        r"""The latitude parts $A_l^m(\varphi)$ of all harmonics (float64).

        Args:
            latitudes: ``(R,)`` latitudes in degrees.
            pad: Append a zero column (used internally for padding).

        Returns:
            ``(R, L^2)`` float64 (``L^2 + 1`` with ``pad``), columns ordered as
            the encoding's.
        """
        x_sign, phi_offset, m0_scale = self.encoding.convention_parameters
        lat = torch.deg2rad(latitudes.to(self.device, torch.float64))
        # At azimuth 0 every cos(m phi) is exactly 1 (and sin(m phi) 0), so the
        # m >= 0 columns hold A; the m < 0 columns share A of order |m|.
        lon = torch.full_like(lat, -phi_offset)
        values = harmonics_torch(
            lon, lat, self.encoding.tables, x_sign, phi_offset, m0_scale
        )
        values = torch.cat([values, values.new_zeros(values.shape[0], 1)], dim=1)
        mirror = self._mirror if pad else self._mirror[:-1]
        return values[:, mirror]

    def row_coefficients(self, latitudes: Tensor) -> Tensor:
        """Contract the weights with the latitude parts, once per row.

        Args:
            latitudes: ``(R,)`` latitudes in degrees.

        Returns:
            ``(R, 2L-1, K)`` float64 coefficients $C_{k,m}$.
        """
        factors = self.latitude_factors(latitudes, pad=True)  # (R, L^2 + 1)
        grouped = factors[:, self._padded].permute(1, 0, 2)  # (2L-1, R, L)
        coefficients = torch.bmm(grouped, self._group_weights)  # (2L-1, R, K)
        return coefficients.permute(1, 0, 2)

    def column_terms(self, longitudes: Tensor) -> Tensor:
        r"""The longitude parts $T_m(\lambda)$, once per column.

        Args:
            longitudes: ``(C,)`` longitudes in degrees.

        Returns:
            ``(C, 2L-1)`` float64, ordered m = -(L-1)..L-1.
        """
        _, phi_offset, _ = self.encoding.convention_parameters
        degrees = self.legendre_polys
        phi = torch.deg2rad(longitudes.to(self.device, torch.float64)) + phi_offset
        orders = torch.arange(1, degrees, dtype=torch.float64, device=self.device)
        angles = phi[:, None] * orders
        return torch.cat(
            [
                torch.sin(angles).flip(1),
                torch.ones_like(phi)[:, None],
                torch.cos(angles),
            ],
            dim=1,
        )
