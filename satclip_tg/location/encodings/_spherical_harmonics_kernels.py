"""Evaluation kernels for real spherical harmonics.

Two implementations of the same numerics:

* a fused, multi-threaded CPU kernel compiled with numba, which writes each
  output element exactly once (no intermediate ``(N, L^2)`` tensors), with
  vector stores (see `_numba_transpose.py`);
* a pure-torch path that runs on any device and supports autograd.

Both evaluate the fully normalised associated Legendre functions with the
standard three-term recurrence in degree, seeded by the sectoral terms
``P_m^m ~ sin(theta)^m``. ``sin(theta)`` is computed directly as ``cos(lat)``,
never as ``sqrt(1 - x^2)``, so values and coordinate gradients are finite at
the poles without clamping the latitude. Both compute in float64 and round
only the result: near the poles ``P_l(x)`` has slope ~ l^2/2, so rounding
``x`` to float32 alone would cost ~1e-4 at L = 40.
"""

import functools
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._output_memory import ReusableOutputMemory, empty_with_huge_pages
from ._spherical_harmonics_constants import P00, SQRT2

__all__ = [
    'Tables',
    'harmonics_numba',
    'harmonics_numba_into',
    'harmonics_torch',
    'numba_available',
]


class Tables:
    """Recurrence coefficients of the fully normalised Legendre functions.

    For degree ``l`` and order ``m`` (no Condon-Shortley phase)::

        P_l^m = a[l, m] x P_{l-1}^m - b[l, m] P_{l-2}^m     (m <= l - 2)
        P_l^{l-1} = d[l] x P_{l-1}^{l-1}
        P_l^l = e[l] sin(theta) P_{l-1}^{l-1}

    Attributes:
        a: ``(L, L)`` float64, zero outside ``m <= l - 2``.
        b: ``(L, L)`` float64, zero outside ``m <= l - 2``.
        d: ``(L,)`` float64, ``sqrt(2l + 1)``.
        e: ``(L,)`` float64, ``sqrt((2l + 1) / (2l))``.
    """

    def __init__(self, legendre_polys: int) -> None:
        """Compute the tables.

        Args:
            legendre_polys: Number of degrees L (degrees 0..L-1).
        """
        size = legendre_polys
        self.a = np.zeros((size, size))
        self.b = np.zeros((size, size))
        for degree in range(2, size):
            m = np.arange(degree - 1, dtype=np.float64)
            ratio = (4.0 * degree**2 - 1) / (degree**2 - m**2)
            self.a[degree, : degree - 1] = np.sqrt(ratio)
            self.b[degree, : degree - 1] = np.sqrt(
                ratio * ((degree - 1) ** 2 - m**2) / (4.0 * (degree - 1) ** 2 - 1)
            )
        degrees = np.arange(size, dtype=np.float64)
        self.d = np.sqrt(2 * degrees + 1)
        self.e = np.sqrt((2 * degrees + 1) / np.maximum(2 * degrees, 1))


def harmonics_torch(
    lon: Tensor,
    lat: Tensor,
    tables: Tables,
    x_sign: float,
    phi_offset: float,
    m0_scale: float,
) -> Tensor:
    """Evaluate the harmonics with torch operations (any device, autograd).

    Args:
        lon: ``(N,)`` float64 longitudes in radians.
        lat: ``(N,)`` float64 latitudes in radians.
        tables: Recurrence coefficients for L degrees.
        x_sign: ``+1`` to measure theta from the north pole, ``-1`` from the south.
        phi_offset: Added to the longitude to give the azimuth phi.
        m0_scale: Factor of the ``m = 0`` columns (``sqrt(2)`` multiplies the rest).

    Returns:
        ``(N, L^2)`` float64 features, columns ordered by l, then m = -l..l.
    """
    size = tables.d.shape[0]
    as_tensor = functools.partial(torch.as_tensor, dtype=lon.dtype, device=lon.device)
    a, b = as_tensor(tables.a), as_tensor(tables.b)
    x = (x_sign * torch.sin(lat)).unsqueeze(1)
    s = torch.cos(lat).unsqueeze(1)
    orders = torch.arange(1, size, dtype=lon.dtype, device=lon.device)
    angles = (lon + phi_offset).unsqueeze(1) * orders
    cos_terms = SQRT2 * torch.cos(angles)
    sin_terms = SQRT2 * torch.sin(angles)

    previous = torch.full_like(x, P00)
    before_previous = previous[:, :0]
    blocks = [m0_scale * previous]
    for degree in range(1, size):
        diagonal = previous[:, degree - 1 :]
        parts = [
            a[degree, : degree - 1] * x * previous[:, : degree - 1]
            - b[degree, : degree - 1] * before_previous,
            float(tables.d[degree]) * x * diagonal,
            float(tables.e[degree]) * s * diagonal,
        ]
        current = torch.cat(parts, dim=1)
        positive = current[:, 1:] * cos_terms[:, :degree]
        negative = (current[:, 1:] * sin_terms[:, :degree]).flip(1)
        blocks += [negative, m0_scale * current[:, :1], positive]
        before_previous, previous = previous, current
    return torch.cat(blocks, dim=1)


def _numba_kernel() -> Any:
    # Imported on first use: numba is slow to import and only needed here.
    from ._spherical_harmonics_numba import harmonics_kernel

    return harmonics_kernel


@functools.cache
def numba_available() -> bool:
    """Whether the compiled CPU kernel can be used.

    Returns:
        ``True`` if numba imports.
    """
    try:
        import numba  # noqa: F401
    except Exception as error:  # pragma: no cover - numba is a dependency
        warnings.warn(
            f'numba is unavailable ({error}); spherical harmonics fall back to the '
            f'slower torch implementation. Reinstall satclip-tg to fix this.',
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


def harmonics_numba(
    coords: Tensor,
    tables: Tables,
    x_sign: float,
    phi_offset: float,
    m0_scale: float,
    memory: ReusableOutputMemory | None = None,
) -> Tensor:
    """Evaluate the harmonics with the compiled CPU kernel (no autograd).

    Args:
        coords: ``(N, 2)`` CPU float tensor of (lon, lat) in degrees.
        tables: Recurrence coefficients for L degrees.
        x_sign: ``+1`` to measure theta from the north pole, ``-1`` from the south.
        phi_offset: Added to the longitude to give the azimuth phi.
        m0_scale: Factor of the ``m = 0`` columns.
        memory: Where to take the output memory from; fresh memory if ``None``.

    Returns:
        ``(N, L^2)`` features in the dtype of ``coords``.
    """
    size = tables.d.shape[0]
    rows, cols = coords.shape[0], size * size
    if memory is None:
        out = empty_with_huge_pages(rows, cols, coords.dtype)
    else:
        out = memory.empty(rows, cols, coords.dtype)
    harmonics_numba_into(coords, tables, x_sign, phi_offset, m0_scale, out)
    return out


def harmonics_numba_into(
    coords: Tensor,
    tables: Tables,
    x_sign: float,
    phi_offset: float,
    m0_scale: float,
    out: Tensor,
) -> None:
    """Write the harmonics into ``out`` with the compiled CPU kernel.

    The coordinates are read as float64 whatever their dtype, and the result
    is rounded once to ``out``'s dtype.

    Args:
        coords: ``(N, 2)`` CPU float tensor of (lon, lat) in degrees.
        tables: Recurrence coefficients for L degrees.
        x_sign: ``+1`` to measure theta from the north pole, ``-1`` from the south.
        phi_offset: Added to the longitude to give the azimuth phi.
        m0_scale: Factor of the ``m = 0`` columns.
        out: ``(N, L^2)`` C-contiguous CPU float32 or float64 tensor.
    """
    detached = coords.detach()
    _numba_kernel()(
        detached[:, 0].to(torch.float64).contiguous().numpy(),
        detached[:, 1].to(torch.float64).contiguous().numpy(),
        tables.a,
        tables.b,
        tables.d,
        tables.e,
        x_sign,
        phi_offset,
        m0_scale,
        out.numpy(),
    )
