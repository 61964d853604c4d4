"""The compiled CPU kernel of the spherical harmonics (numba).

See `_spherical_harmonics_kernels.py` for the numerics. Points are processed
in blocks of ``BLOCK``: the recurrences run with the points in the innermost
loop, which LLVM vectorises, and fill a column-major block buffer; 8 x 8
register transposes then move the buffer into the row-major output with whole
vector stores. Blocks are grouped into parallel tasks that share their scratch
arrays.
"""

import math
from typing import Any

import numba
import numpy as np

from ._numba_transpose import TILE, transpose8_store
from ._spherical_harmonics_constants import P00, SQRT2

__all__ = ['harmonics_kernel']

BLOCK = 64  # points per block; a multiple of TILE
BLOCKS_PER_TASK = 8


@numba.njit(  # type: ignore[misc]
    parallel=True, fastmath=True, nogil=True, cache=True, error_model='numpy'
)
def harmonics_kernel(
    lon_deg: Any,
    lat_deg: Any,
    a: Any,
    b: Any,
    d: Any,
    e: Any,
    x_sign: float,
    phi_offset: float,
    m0_scale: float,
    out: Any,
) -> None:  # pragma: no cover - compiled
    """Write the harmonics of N points into ``out``.

    Args:
        lon_deg: ``(N,)`` float64 longitudes in degrees.
        lat_deg: ``(N,)`` float64 latitudes in degrees.
        a: Recurrence table ``a`` of `Tables`.
        b: Recurrence table ``b``.
        d: Recurrence table ``d``.
        e: Recurrence table ``e``.
        x_sign: ``+1`` to measure theta from the north pole, ``-1`` from the south.
        phi_offset: Added to the longitude (radians) to give the azimuth.
        m0_scale: Factor of the ``m = 0`` columns.
        out: ``(N, L^2)`` C-contiguous float32 or float64 array.
    """
    n = lon_deg.shape[0]
    size = d.shape[0]
    columns = size * size
    width = BLOCK
    flat_out = out.reshape(n * columns)
    blocks = (n + width - 1) // width
    tiled_columns = columns // TILE * TILE
    for task in numba.prange((blocks + BLOCKS_PER_TASK - 1) // BLOCKS_PER_TASK):
        buffer = np.empty((columns, width), dtype=out.dtype)
        flat_buffer = buffer.reshape(columns * width)
        before_previous = np.zeros((size, width))
        previous = np.zeros((size, width))
        current = np.zeros((size, width))
        cos_m = np.zeros((size, width))
        sin_m = np.zeros((size, width))
        x = np.zeros(width)
        s = np.zeros(width)
        cos1 = np.zeros(width)
        sin1 = np.zeros(width)
        first_block = task * BLOCKS_PER_TASK
        for block in range(first_block, min(blocks, first_block + BLOCKS_PER_TASK)):
            start = block * width
            count = min(width, n - start)
            for w in range(width):
                # Lanes past the last point repeat it: finite, never stored.
                point = start + min(w, count - 1)
                phi = lon_deg[point] * (math.pi / 180.0) + phi_offset
                lat = lat_deg[point] * (math.pi / 180.0)
                x[w] = x_sign * math.sin(lat)
                s[w] = math.cos(lat)
                cos1[w] = math.cos(phi)
                sin1[w] = math.sin(phi)
                # sqrt(2) of the m != 0 columns is folded into cos/sin.
                cos_m[0, w] = SQRT2
                sin_m[0, w] = 0.0
            for m in range(1, size):
                for w in range(width):
                    cos_m[m, w] = cos_m[m - 1, w] * cos1[w] - sin_m[m - 1, w] * sin1[w]
                    sin_m[m, w] = sin_m[m - 1, w] * cos1[w] + cos_m[m - 1, w] * sin1[w]
            for w in range(width):
                current[0, w] = P00
                buffer[0, w] = m0_scale * P00
            for degree in range(1, size):
                before_previous, previous, current = (
                    previous,
                    current,
                    before_previous,
                )
                for m in range(degree - 1):
                    a_lm = a[degree, m]
                    b_lm = b[degree, m]
                    for w in range(width):
                        current[m, w] = (
                            a_lm * x[w] * previous[m, w] - b_lm * before_previous[m, w]
                        )
                d_l = d[degree]
                e_l = e[degree]
                for w in range(width):
                    current[degree - 1, w] = d_l * x[w] * previous[degree - 1, w]
                    current[degree, w] = e_l * s[w] * previous[degree - 1, w]
                centre = degree * degree + degree
                for w in range(width):
                    buffer[centre, w] = m0_scale * current[0, w]
                for m in range(1, degree + 1):
                    for w in range(width):
                        buffer[centre + m, w] = current[m, w] * cos_m[m, w]
                        buffer[centre - m, w] = current[m, w] * sin_m[m, w]
            if count == width:
                for w0 in range(0, width, TILE):
                    for column in range(0, tiled_columns, TILE):
                        transpose8_store(
                            flat_out,
                            (start + w0) * columns + column,
                            columns,
                            flat_buffer,
                            column * width + w0,
                            width,
                        )
                first_column = tiled_columns
            else:
                first_column = 0
            for w in range(count):
                for column in range(first_column, columns):
                    out[start + w, column] = buffer[column, w]
