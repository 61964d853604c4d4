"""Export a location encoder as weights of `torchgeo.models.SatCLIP`.

TorchGeo's `SatCLIP` is one architecture: the released spherical-harmonics
convention with ``legendre_polys`` degrees, then a SIREN of
``num_hidden_layers`` sine layers of width ``capacity`` (first-layer
frequency 30, the others 1) and a linear output of ``embed_dim``. Its state
dict holds the network alone (``nnet.layers.{i}.weight``, ...,
``nnet.last_layer.bias``); the harmonics have no parameters. Any encoder of
that shape, whatever checkpoint it came from, exports to a plain state dict
that::

    model = torchgeo.models.SatCLIP(**init_args)
    model.load_state_dict(torch.load(FILE, weights_only=True), strict=True)

loads. TorchGeo refuses unknown keys under ``strict=True``, so the
constructor arguments (and the model card, where the source has one) go to a
JSON sidecar ``FILE.json`` instead of the state dict.

Two differences remain, both outside the exported weights: TorchGeo clamps
latitudes to +-89.95 degrees (so embeddings differ closer to the poles), and
its SIREN uses dropout 0.5 in training mode whatever the source used (only
fine-tuning sees it).
"""

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .atomic import OutputExistsError, atomic_output
from .errors import ExportError
from .location.encoder import LocationEncoder
from .location.encodings.spherical_harmonics import SphericalHarmonics
from .location.networks.siren import SirenLayer, SirenNet

__all__ = [
    'EXPORT_FORMATS',
    'ExportError',
    'TorchGeoExport',
    'export_torchgeo',
    'torchgeo_init_args',
    'torchgeo_state_dict',
]

#: Formats `satclip-tg export --format` knows.
EXPORT_FORMATS = ('torchgeo',)
#: Value of the sidecar's ``format`` entry.
SIDECAR_FORMAT = 'satclip-tg torchgeo export'
# The frequencies TorchGeo's SirenNet hard-codes.
_W0_INITIAL = 30.0
_W0 = 1.0
_TORCHGEO_DROPOUT = 0.5


@dataclasses.dataclass(frozen=True)
class TorchGeoExport:
    """What `export_torchgeo` wrote.

    Attributes:
        output: The state-dict file.
        sidecar: The JSON file with the constructor arguments and provenance.
        init_args: Keyword arguments of `torchgeo.models.SatCLIP`.
        notes: Differences the user should know about (may be empty).
    """

    output: pathlib.Path
    sidecar: pathlib.Path
    init_args: dict[str, int]
    notes: list[str]

    @property
    def constructor(self) -> str:
        """The Python call that builds the matching TorchGeo model."""
        args = ', '.join(f'{key}={value}' for key, value in self.init_args.items())
        return f'torchgeo.models.SatCLIP({args})'


def _refuse(label: str, problem: str) -> ExportError:
    return ExportError(
        f'{label} cannot be exported to torchgeo.models.SatCLIP: {problem}. '
        f"TorchGeo's SatCLIP is the 'sphericalharmonics' encoding (convention "
        f"'satclip') followed by a 'siren' network with w0_initial=30 and w0=1; "
        f'use the encoder with satclip-tg instead (load_location_encoder, '
        f'satclip-tg embed)'
    )


def torchgeo_init_args(
    encoder: nn.Module, label: str = 'the encoder'
) -> dict[str, int]:
    """The `torchgeo.models.SatCLIP` arguments that represent an encoder.

    Args:
        encoder: A `LocationEncoder`.
        label: How to name it in messages (e.g. its source).

    Returns:
        ``{'legendre_polys', 'capacity', 'embed_dim', 'num_hidden_layers'}``.

    Raises:
        ExportError: If TorchGeo's class cannot represent the encoder (another
            encoding or network, another harmonics convention, other
            frequencies, or no hidden layer).
    """
    if not isinstance(encoder, LocationEncoder):
        raise _refuse(label, f'it is a {type(encoder).__name__}, not a LocationEncoder')
    config = encoder.config or {}
    encoding, network = encoder.positional_encoding, encoder.network
    if not isinstance(encoding, SphericalHarmonics):
        name = config.get('positional_encoding', type(encoding).__name__)
        raise _refuse(label, f'its positional encoding is {name!r}')
    if encoding.convention != 'satclip':
        raise _refuse(
            label, f'its harmonics use the {encoding.convention!r} convention'
        )
    if not isinstance(network, SirenNet):
        name = config.get('network', type(network).__name__)
        raise _refuse(label, f'its network is {name!r}')
    layers = [layer for layer in network.layers if isinstance(layer, SirenLayer)]
    if len(layers) != len(network.layers):
        raise _refuse(label, 'its SIREN holds layers of another kind')
    if not layers:
        raise _refuse(label, 'its SIREN has no hidden layer (TorchGeo needs one)')
    for index, layer in enumerate(layers):
        expected = _W0_INITIAL if index == 0 else _W0
        if layer.w0 != expected or not layer.activation:
            raise _refuse(
                label,
                f'its SIREN layer {index} has w0={layer.w0} (TorchGeo: {expected})',
            )
    last = network.last_layer
    if last.w0 != _W0 or last.activation:
        raise _refuse(label, 'its SIREN output layer is not a plain linear layer')
    capacity, dim_in = (int(size) for size in layers[0].weight.shape)
    if dim_in != encoding.embedding_dim:
        raise _refuse(
            label,
            f'its first layer takes {dim_in} inputs, not L^2 = '
            f'{encoding.embedding_dim}',
        )
    return {
        'legendre_polys': int(encoding.legendre_polys),
        'capacity': capacity,
        'embed_dim': int(last.weight.shape[0]),
        'num_hidden_layers': len(layers),
    }


def torchgeo_state_dict(
    encoder: nn.Module, label: str = 'the encoder'
) -> dict[str, Tensor]:
    """The state dict `torchgeo.models.SatCLIP` loads with ``strict=True``.

    Args:
        encoder: A `LocationEncoder` that `torchgeo_init_args` accepts.
        label: How to name it in messages.

    Returns:
        ``nnet.*`` tensors (detached copies, on the CPU, in their dtype).

    Raises:
        ExportError: If TorchGeo's class cannot represent the encoder.
    """
    torchgeo_init_args(encoder, label)
    assert isinstance(encoder, LocationEncoder)
    return {
        f'nnet.{key}': value.detach().cpu().clone()
        for key, value in encoder.network.state_dict().items()
    }


def _notes(encoder: LocationEncoder) -> list[str]:
    notes = [
        'TorchGeo clamps latitudes to +-89.95 degrees: embeddings of points '
        "closer to a pole differ from satclip-tg's"
    ]
    network = encoder.network
    assert isinstance(network, SirenNet)
    dropouts = {
        float(layer.dropout)
        for layer in network.layers
        if isinstance(layer, SirenLayer)
    }
    if dropouts != {_TORCHGEO_DROPOUT}:
        shown = ', '.join(f'{value:g}' for value in sorted(dropouts))
        notes.append(
            f"the encoder was trained with dropout {shown}; TorchGeo's SIREN "
            f'uses 0.5 in training mode (eval-mode outputs are identical)'
        )
    return notes


def export_torchgeo(
    source: Any,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    dtype: torch.dtype = torch.float32,
    local_files_only: bool = False,
) -> TorchGeoExport:
    """Write an encoder's weights as a `torchgeo.models.SatCLIP` state dict.

    Example::

        result = export_torchgeo('runs/demo-.../satclip-demo.ckpt', 'satclip.pt')
        model = torchgeo.models.SatCLIP(**result.init_args)
        model.load_state_dict(torch.load('satclip.pt'), strict=True)

    Args:
        source: Anything `load_location_encoder` accepts (a checkpoint path,
            a registered weights name, a released model, a state dict), or a
            `LocationEncoder` itself.
        output: The state-dict file (``.pt``); the sidecar is ``output`` with
            ``.json`` appended.
        overwrite: Replace existing output files.
        dtype: Dtype of the exported tensors. TorchGeo's model takes the
            default dtype when built (float32 unless changed) and
            ``load_state_dict`` casts to it.
        local_files_only: Never download a remote source.

    Returns:
        The files written, the constructor arguments and notes.

    Raises:
        ExportError: If TorchGeo's class cannot represent the encoder.
        OutputExistsError: If an output exists and ``overwrite`` is false.
    """
    from . import __version__
    from .pretrained import get_pretrained_info, load_location_encoder

    target = pathlib.Path(output)
    sidecar = target.with_name(target.name + '.json')
    if not overwrite:
        for path in (target, sidecar):
            if path.exists():
                raise OutputExistsError(
                    f'{path} already exists; pass --overwrite (overwrite=True) to '
                    f'replace it, or choose another output path'
                )
    if isinstance(source, LocationEncoder):
        encoder, label = source, 'the encoder'
    else:
        encoder = load_location_encoder(
            source, dtype=dtype, local_files_only=local_files_only
        )
        label = str(source) if not isinstance(source, Mapping) else 'the state dict'
    init_args = torchgeo_init_args(encoder, label)
    state = {
        key: value.to(dtype) for key, value in torchgeo_state_dict(encoder).items()
    }
    notes = _notes(encoder)
    info = get_pretrained_info(encoder)
    with atomic_output(target, overwrite=overwrite) as temporary:
        torch.save(state, temporary)
    record = {
        'format': SIDECAR_FORMAT,
        'class_path': 'torchgeo.models.SatCLIP',
        'init_args': init_args,
        'state_dict': target.name,
        'dtype': str(dtype).removeprefix('torch.'),
        'source': info.source if info is not None else label,
        'location_encoder': encoder.config,
        'notes': notes,
        'satclip_tg_version': __version__,
        'model_card': dict(info.model_card)
        if info is not None and info.model_card is not None
        else None,
    }
    with atomic_output(sidecar, overwrite=overwrite) as temporary:
        temporary.write_text(json.dumps(record, indent=2, default=str) + '\n')
    return TorchGeoExport(target, sidecar, init_args, notes)
