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

__all__ = ['SphericalHarmonics']

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

        Uses the compiled kernel. The coordinates are read in float64 whatever
        their dtype and the result is rounded once to ``out``'s dtype, so
        float64 coordinates with a float32 ``out`` lose nothing to rounding
        the coordinates first. The coordinates are not validated here.

        Args:
            coords: ``(N, 2)`` CPU float tensor of (lon, lat) in degrees.
            out: ``(N, L^2)`` C-contiguous CPU float32 or float64 tensor.
        """
        harmonics_numba_into(coords, self._tables, *self.convention_parameters, out=out)

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
