"""Batched evaluation of a location encoder on many scattered points.

`embed_points` evaluates a location encoder chunk by chunk with bounded
memory, and validates the coordinates once, on entry. For a `LocationEncoder`
it runs the two parts itself and uses the fast paths they offer (see
`satclip_tg.embedding.capabilities`): on the CPU an encoding with
``encode_into`` (the spherical harmonics) writes each chunk's features straight
into a reused buffer in the network's dtype (computed in float64 and rounded
once, from float64 coordinates), and a network with ``forward_into`` (the
SIREN) runs as one in-place ``addmm`` + ``sin`` per layer into reused
buffers, the last one straight into the output array. Nothing of size
``N x L^2`` is ever materialised. Parts without these capabilities, and other
modules, run their own ``forward`` per chunk.
"""

import warnings
from collections.abc import Callable, MutableMapping

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..location.coordinates import validate_coordinates
from ..location.encoder import LocationEncoder, encoder_device, encoder_dtype
from ..location.encodings.base import PositionalEncoding
from ..location.networks.siren import SirenLayer, SirenNet
from .capabilities import SupportsEncodeInto, SupportsForwardInto

__all__ = [
    'DEFAULT_BATCH_SIZE',
    'embed_points',
    'embedding_width',
]

#: Points per chunk: large enough for efficient matrix products, small enough
#: that a chunk's harmonics (``batch x L^2``) fit in a few tens of MB.
DEFAULT_BATCH_SIZE = 8192

#: Embeds one chunk of validated CPU float64 coordinates; writes into the
#: given float32 CPU rows when it can and returns the embeddings.
_ChunkRunner = Callable[[Tensor, Tensor | None], Tensor]


def siren_layers(network: SirenNet) -> list[SirenLayer]:
    """Deprecated: the sine layers of a SIREN, ``list(network.layers)``.

    Args:
        network: The network.

    Returns:
        Its layers, first first.
    """
    _deprecated('siren_layers', 'SirenNet.layers')
    return [layer for layer in network.layers if isinstance(layer, SirenLayer)]


def siren_forward(
    network: SirenNet,
    x: Tensor,
    buffers: tuple[Tensor, Tensor] | None = None,
    out: Tensor | None = None,
    skip_first: bool = False,
) -> Tensor:
    """Deprecated: use `SirenNet.forward_into` (or ``forward_from_linear``).

    Args:
        network: The network, in eval mode.
        x: ``(B, dim_in)`` features, or with ``skip_first`` the activations
            of the first layer, ``(B, hidden_dim)``.
        buffers: Ignored (``forward_into`` manages its own scratch buffers).
        out: Where to write the ``(B, dim_out)`` output.
        skip_first: Whether ``x`` already went through the first layer.

    Returns:
        ``(B, dim_out)`` embeddings.
    """
    _deprecated('siren_forward', 'SirenNet.forward_into')
    if not skip_first:
        return network.forward_into(x, out)
    # The first layer's activations are what its successor reads: run the rest.
    rest = network.layers[1:]
    for layer in rest:
        assert isinstance(layer, SirenLayer)
        x = layer.forward_into(x)
    return network.last_layer.forward_into(x, out)


def _deprecated(name: str, replacement: str) -> None:
    warnings.warn(
        f'satclip_tg.embedding.engine.{name} is deprecated; use {replacement}',
        DeprecationWarning,
        stacklevel=3,
    )


def embedding_width(encoder: nn.Module) -> int | None:
    """The output width a module declares, without running it.

    Args:
        encoder: A location encoder (`LocationEncoder.embed_dim`) or any module
            with an integer ``embed_dim`` attribute.

    Returns:
        The width, or ``None`` when the module does not say.
    """
    width = getattr(encoder, 'embed_dim', None)
    if isinstance(width, int) and not isinstance(width, bool) and width > 0:
        return width
    return None


def _as_coordinates(coords: npt.ArrayLike | Tensor, validate: bool) -> Tensor:
    if isinstance(coords, Tensor):
        tensor = coords.detach().to('cpu', torch.float64)
    else:
        tensor = torch.as_tensor(np.asarray(coords, dtype=np.float64))
    return validate_coordinates(tensor) if validate else tensor


def _chunk_runner(encoder: nn.Module, rows: int) -> _ChunkRunner:
    """How to embed one chunk of at most ``rows`` points."""
    device = encoder_device(encoder)
    if not isinstance(encoder, LocationEncoder):

        def plain(chunk: Tensor, out: Tensor | None) -> Tensor:
            result: Tensor = encoder(chunk.to(device))
            return result

        return plain
    encoding, network = encoder.positional_encoding, encoder.network
    dtype = encoder_dtype(network, default=encoder_dtype(encoder))
    scratch: MutableMapping[str, Tensor] = {}
    fast_network = isinstance(network, SupportsForwardInto) and not network.training
    features: Tensor | None = None
    if device.type == 'cpu' and isinstance(encoding, SupportsEncodeInto):
        width = int(getattr(encoding, 'embedding_dim', 0))
        if width > 0:
            features = torch.empty(rows, width, dtype=dtype)

    def encode(chunk: Tensor) -> Tensor:
        if features is not None and isinstance(encoding, SupportsEncodeInto):
            buffer = features[: chunk.shape[0]]
            encoding.encode_into(chunk, buffer)
            return buffer
        # The coordinates are valid: skip the check in `PositionalEncoding.forward`
        # (plugin encodings that do not derive from it check in their own way).
        local = chunk.to(device)
        if isinstance(encoding, PositionalEncoding):
            values: Tensor = encoding.encode(local)
        else:
            values = encoding(local)
        return values if values.dtype == dtype else values.to(dtype)

    def run(chunk: Tensor, out: Tensor | None) -> Tensor:
        values = encode(chunk)
        if fast_network and isinstance(network, SupportsForwardInto):
            target = out if out is not None and out.dtype == dtype else None
            if target is not None and target.device != values.device:
                target = None
            return network.forward_into(values, target, scratch=scratch)
        result: Tensor = network(values)
        return result

    return run


def embed_points(
    encoder: nn.Module,
    coords: npt.ArrayLike | Tensor,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    description: str = 'embedding',
    validate: bool = True,
) -> npt.NDArray[np.float32]:
    """Embed many (lon, lat) points in chunks, with bounded memory.

    The encoder runs on its own device and in its own dtype; the result is
    float32 on the CPU. Coordinates are kept in float64 up to the encoding.

    Args:
        encoder: A location encoder (it is switched to eval mode); any module
            mapping ``(N, 2)`` (lon, lat) tensors to ``(N, D)`` works too.
        coords: ``(N, 2)`` (lon, lat) in degrees (array, list or tensor).
        batch_size: Points per chunk.
        progress: Show a progress bar (tqdm, on stderr).
        description: Label of the progress bar.
        validate: Check the coordinates (`validate_coordinates`). Pass
            ``False`` only when the caller has checked them already, as
            ``satclip-tg embed`` does; they are not checked again downstream.

    Returns:
        ``(N, embed_dim)`` float32 embeddings.

    Raises:
        ValueError: If a coordinate is invalid (see `validate_coordinates`) or
            ``batch_size`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be positive, got {batch_size}')
    points = _as_coordinates(coords, validate)
    encoder.eval()
    count = points.shape[0]
    width = embedding_width(encoder)
    if not count:
        return np.empty((0, width or 0), dtype=np.float32)
    # The output array is allocated once the width is known: from the module,
    # or else from the first chunk (never from an extra trial point).
    result = np.empty((count, width), dtype=np.float32) if width else None
    step = min(batch_size, count)
    with (
        torch.inference_mode(),
        tqdm(
            total=count,
            unit='pt',
            unit_scale=True,
            disable=not progress,
            desc=description,
            leave=False,
        ) as bar,
    ):
        run = _chunk_runner(encoder, step)
        for start in range(0, count, step):
            stop = min(start + step, count)
            target = None if result is None else torch.from_numpy(result[start:stop])
            embedded = run(points[start:stop], target)
            if result is None:
                result = np.empty((count, embedded.shape[1]), dtype=np.float32)
            if target is None or embedded.data_ptr() != target.data_ptr():
                result[start:stop] = embedded.to('cpu', torch.float32).numpy()
            bar.update(stop - start)
    assert result is not None
    return result
