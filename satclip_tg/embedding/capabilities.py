"""The fast paths a component may offer to the embedding engine.

`embed_points` and the grid functions do not check for particular classes:
they ask each part of a `LocationEncoder` what it can do, so that a plugin
encoding or network can offer its own fast path by defining the method (no
base class to derive from, no registration). Each capability is a
`typing.Protocol`; the engine tests for it with ``isinstance`` (which looks
for the method by name). ``docs/networks.md`` describes the contract for
plugin authors. Built-in providers: `SphericalHarmonics` (``encode_into``,
``factorize_linear``) and `SirenNet` (``forward_into``, ``input_linear``,
``forward_from_linear``).
"""

from collections.abc import MutableMapping
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = [
    'RowColumnFactors',
    'SupportsEncodeInto',
    'SupportsForwardInto',
    'SupportsLinearFactorization',
    'SupportsLinearInput',
    'has_row_factorization',
]


@runtime_checkable
class SupportsEncodeInto(Protocol):
    """An encoding that writes its features into a given CPU tensor."""

    def encode_into(self, coords: Tensor, out: Tensor) -> None:
        """Write the features of validated coordinates into ``out``.

        Args:
            coords: ``(N, 2)`` float64 CPU (lon, lat) in degrees, already
                validated.
            out: ``(N, embedding_dim)`` C-contiguous CPU tensor in the
                network's dtype.
        """


@runtime_checkable
class SupportsForwardInto(Protocol):
    """A network with an eval-mode forward into given memory."""

    def forward_into(
        self,
        x: Tensor,
        out: Tensor | None = None,
        *,
        scratch: MutableMapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Compute ``self(x)`` in eval mode, without autograd.

        Args:
            x: ``(N, dim_in)`` features in the network's dtype and device; the
                method may overwrite them.
            out: Where to write the ``(N, dim_out)`` result (in the network's
                dtype and device), or ``None`` for new memory.
            scratch: A dictionary the caller keeps across the calls of one
                run, where the network may keep reusable buffers.

        Returns:
            The result (``out`` when given).
        """


class RowColumnFactors(Protocol):
    """A linear map of an encoding, split into latitude and longitude parts.

    For latitudes ``(R,)`` and longitudes ``(C,)``, ``column_terms(lon) @
    row_coefficients(lat)`` is ``(R, C, K)``: the linear map at every cell.
    """

    @property
    def num_terms(self) -> int:
        """Number of terms T of the factorisation."""

    def row_coefficients(self, latitudes: Tensor) -> Tensor:
        """The latitude parts, once per row.

        Args:
            latitudes: ``(R,)`` latitudes in degrees.

        Returns:
            ``(R, T, K)`` float64.
        """

    def column_terms(self, longitudes: Tensor) -> Tensor:
        """The longitude parts, once per column.

        Args:
            longitudes: ``(C,)`` longitudes in degrees.

        Returns:
            ``(C, T)`` float64.
        """


@runtime_checkable
class SupportsLinearFactorization(Protocol):
    """An encoding whose linear maps factorise by grid rows and columns."""

    def factorize_linear(self, weight: Tensor) -> RowColumnFactors:
        """Factorise ``weight @ features`` by latitude rows and longitude columns.

        Args:
            weight: ``(K, embedding_dim)`` weights.

        Returns:
            The factors (see `LinearRowFactorization`).
        """


@runtime_checkable
class SupportsLinearInput(Protocol):
    """A network that starts with an affine map and can continue after it."""

    def input_linear(self) -> tuple[Tensor, Tensor]:
        """The ``(weight, bias)`` of the first affine map.

        Returns:
            ``(K, dim_in)`` weight and ``(K,)`` bias.
        """

    def forward_from_linear(
        self,
        pre: Tensor,
        out: Tensor | None = None,
        *,
        scratch: MutableMapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Finish an eval-mode forward from ``weight @ x + bias``.

        Args:
            pre: ``(N, K)`` output of the first affine map (may be overwritten).
            out: As in `SupportsForwardInto.forward_into`.
            scratch: As in `SupportsForwardInto.forward_into`.

        Returns:
            ``(N, dim_out)`` embeddings.
        """


def has_row_factorization(encoder: nn.Module) -> bool:
    """Whether an encoder's parts offer the row factorisation of grids.

    Args:
        encoder: A location encoder (a module with ``positional_encoding`` and
            ``network`` attributes; other modules never qualify).

    Returns:
        ``True`` when the encoding offers ``factorize_linear``, the network
        ``input_linear`` and ``forward_from_linear``, and the encoder is in
        eval mode.
    """
    encoding = getattr(encoder, 'positional_encoding', None)
    network = getattr(encoder, 'network', None)
    return (
        isinstance(encoding, SupportsLinearFactorization)
        and isinstance(network, SupportsLinearInput)
        and not encoder.training
    )
