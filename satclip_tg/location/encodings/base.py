"""The base class every positional encoding derives from."""

import abc
from typing import ClassVar

from torch import Tensor, nn

from ..coordinates import validate_coordinates

__all__ = ['PositionalEncoding']


class PositionalEncoding(nn.Module, abc.ABC):
    """Deterministic map from (lon, lat) in degrees to a feature vector.

    Subclasses implement `encode` and set `embedding_dim`; the
    public `forward` validates the coordinates first, so that no encoding
    ever sees NaN, infinity or out-of-range values.

    Two class attributes declare geometric properties. The conformance checks
    in `satclip_tg.testing` verify whatever an encoding claims:

    * ``periodic_in_longitude``: lon = -180 and lon = 180 give the same features.
    * ``pole_invariant``: at each pole, the features do not depend on longitude.
    """

    #: Whether lon = -180 and lon = +180 produce identical features.
    periodic_in_longitude: ClassVar[bool] = False
    #: Whether the features at a pole are the same for every longitude.
    pole_invariant: ClassVar[bool] = False

    #: Number of output features per coordinate.
    embedding_dim: int

    def forward(self, coords: Tensor) -> Tensor:
        """Encode coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, embedding_dim)`` tensor of the same dtype and device.

        Raises:
            TypeError: If ``coords`` is not a floating-point tensor.
            ValueError: If the shape is wrong or a coordinate is invalid.
        """
        return self.encode(validate_coordinates(coords))

    @abc.abstractmethod
    def encode(self, coords: Tensor) -> Tensor:
        """Encode coordinates that have already been validated.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, embedding_dim)`` tensor of the same dtype and device.
        """

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``repr``."""
        return f'embedding_dim={self.embedding_dim}'
