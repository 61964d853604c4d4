"""Batched evaluation of a location encoder on many scattered points.

`embed_points` evaluates a `LocationEncoder` chunk by chunk with bounded
memory. For the SatCLIP architecture (spherical harmonics followed by a
SIREN) on the CPU it takes a fused path: the harmonics of each chunk are
written straight into a reused buffer in the network's dtype (computed in
float64 and rounded once, from float64 coordinates), and every layer runs as
one in-place ``addmm`` + ``sin`` into reused buffers, the last one straight
into the output array. Nothing of size ``N x L^2`` is ever materialised. Other
encoders, and other devices, use the encoder's own ``forward`` per chunk.
"""

from collections.abc import Callable
from typing import cast

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..location.coordinates import validate_coordinates
from ..location.encoder import LocationEncoder, encoder_device, encoder_dtype
from ..location.encodings import _spherical_harmonics_kernels as kernels
from ..location.encodings.spherical_harmonics import SphericalHarmonics
from ..location.networks.siren import SirenLayer, SirenNet

__all__ = [
    'DEFAULT_BATCH_SIZE',
    'embed_points',
    'siren_forward',
    'siren_layers',
]

#: Points per chunk: large enough for efficient matrix products, small enough
#: that a chunk's harmonics (``batch x L^2``) fit in a few tens of MB.
DEFAULT_BATCH_SIZE = 8192


def siren_layers(network: SirenNet) -> list[SirenLayer]:
    """The sine layers of a SIREN (without its last, linear layer).

    Args:
        network: The network.

    Returns:
        Its layers, first first.
    """
    return [cast(SirenLayer, layer) for layer in network.layers]


def _siren_layer(layer: SirenLayer, x: Tensor, out: Tensor | None = None) -> Tensor:
    result = torch.addmm(layer.bias, x, layer.weight.t(), out=out)
    if layer.activation:
        result.mul_(layer.w0).sin_()
    return result


def siren_forward(
    network: SirenNet,
    x: Tensor,
    buffers: tuple[Tensor, Tensor] | None = None,
    out: Tensor | None = None,
    skip_first: bool = False,
) -> Tensor:
    """Evaluate a SIREN in eval mode with in-place operations.

    Equal to ``network(x)`` in eval mode (dropout is then the identity), but
    each layer is a single ``addmm`` followed by in-place ``mul``/``sin``, into
    optional reused buffers.

    Args:
        network: The network, in eval mode.
        x: ``(B, dim_in)`` features, or with ``skip_first`` the activations
            of the first layer, ``(B, hidden_dim)``.
        buffers: Two ``(>= B, hidden_dim)`` scratch tensors to alternate between.
        out: Where to write the ``(B, dim_out)`` output.
        skip_first: Whether ``x`` already went through the first layer.

    Returns:
        ``(B, dim_out)`` embeddings.
    """
    rows = x.shape[0]
    layers = siren_layers(network)[1 if skip_first else 0 :]
    for layer in layers:
        target = None
        if buffers is not None:
            # Write into whichever scratch buffer does not hold the input.
            spare = buffers[1] if x.data_ptr() == buffers[0].data_ptr() else buffers[0]
            target = spare[:rows]
        x = _siren_layer(layer, x, target)
    return _siren_layer(network.last_layer, x, out)


def _fast_path(encoder: LocationEncoder) -> bool:
    encoding, network = encoder.positional_encoding, encoder.network
    return (
        isinstance(encoding, SphericalHarmonics)
        and isinstance(network, SirenNet)
        and not network.training
        and encoder_device(encoder).type == 'cpu'
        and encoding.backend != 'torch'
        and kernels.numba_available()
    )


def _as_coordinates(coords: npt.ArrayLike | Tensor) -> Tensor:
    if isinstance(coords, Tensor):
        tensor = coords.detach().to('cpu', torch.float64)
    else:
        tensor = torch.as_tensor(np.asarray(coords, dtype=np.float64))
    return validate_coordinates(tensor)


def _fused_chunks(
    encoder: LocationEncoder, batch_size: int
) -> Callable[[Tensor, Tensor], None]:
    encoding = encoder.positional_encoding
    network = encoder.network
    assert isinstance(encoding, SphericalHarmonics)
    assert isinstance(network, SirenNet)
    dtype = encoder_dtype(encoder)
    hidden = int(siren_layers(network)[0].weight.shape[0])
    features = torch.empty(batch_size, encoding.embedding_dim, dtype=dtype)
    buffers = (
        torch.empty(batch_size, hidden, dtype=dtype),
        torch.empty(batch_size, hidden, dtype=dtype),
    )

    def run(chunk: Tensor, out: Tensor) -> None:
        rows = chunk.shape[0]
        harmonics = features[:rows]
        encoding.encode_into(chunk, harmonics)
        target = out if out.dtype == dtype else None
        result = siren_forward(network, harmonics, buffers, target)
        if target is None:
            out.copy_(result)

    return run


def embed_points(
    encoder: LocationEncoder,
    coords: npt.ArrayLike | Tensor,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    description: str = 'embedding',
) -> npt.NDArray[np.float32]:
    """Embed many (lon, lat) points in chunks, with bounded memory.

    The encoder runs on its own device and in its own dtype; the result is
    float32 on the CPU. Coordinates are kept in float64 up to the encoding.

    Args:
        encoder: A location encoder (it is switched to eval mode).
        coords: ``(N, 2)`` (lon, lat) in degrees (array, list or tensor).
        batch_size: Points per chunk.
        progress: Show a progress bar (tqdm, on stderr).
        description: Label of the progress bar.

    Returns:
        ``(N, embed_dim)`` float32 embeddings.

    Raises:
        ValueError: If a coordinate is invalid (see `validate_coordinates`) or
            ``batch_size`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be positive, got {batch_size}')
    points = _as_coordinates(coords)
    encoder.eval()
    count = points.shape[0]
    device = encoder_device(encoder)
    with torch.inference_mode():
        probe = encoder(points[:1].to(device)) if count else None
        if probe is None:
            width = encoder.embed_dim or 0
            return np.empty((0, width), dtype=np.float32)
        result = np.empty((count, probe.shape[1]), dtype=np.float32)
        output = torch.from_numpy(result)
        step = min(batch_size, count)
        fused = _fused_chunks(encoder, step) if _fast_path(encoder) else None
        with tqdm(
            total=count,
            unit='pt',
            unit_scale=True,
            disable=not progress,
            desc=description,
            leave=False,
        ) as bar:
            for start in range(0, count, step):
                stop = min(start + step, count)
                chunk = points[start:stop]
                if fused is not None:
                    fused(chunk, output[start:stop])
                else:
                    embedded = encoder(chunk.to(device))
                    output[start:stop] = embedded.to('cpu', torch.float32)
                bar.update(stop - start)
    return result
