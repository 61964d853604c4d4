"""Constants shared by the torch and the numba spherical-harmonics kernels.

A module of their own, so that the numba kernel, which the torch module
imports only when numba is installed, need not import the torch module back.
"""

import math

__all__ = ['P00', 'SQRT2']

#: The degree-0 harmonic, sqrt(1 / (4 pi)).
P00 = 0.5 / math.sqrt(math.pi)
#: The factor of the real harmonics of order m != 0.
SQRT2 = math.sqrt(2.0)
