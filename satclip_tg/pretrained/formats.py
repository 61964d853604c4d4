"""Checkpoint layouts: what the tensors of a SatCLIP checkpoint mean.

Three layouts hold a SatCLIP location encoder: the official Lightning
checkpoints (``model.location.nnet.*`` beside ``model.visual.*``), TorchGeo's
`SatCLIP` state dict (``nnet.*``) or a bare SIREN, and the checkpoints our
`SatCLIPTask` writes (an entry under `satclip_tg.checkpoint_format.
CHECKPOINT_KEY` with the encoder's recipe). The SIREN's architecture is
inferred from its tensor shapes, and weights trained on the reference's
``'closed-form'`` harmonics are mapped exactly onto ours.
"""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..checkpoint_format import CHECKPOINT_KEY as _TASK_CHECKPOINT_KEY
from ..errors import CheckpointError

__all__ = [
    'OFFICIAL_PREFIX',
    'SirenShape',
    'check_finite',
    'check_hyper_parameters',
    'closed_form_factors',
    'find_siren',
    'first_keys',
    'infer_backbone',
    'location_recipe',
    'location_state',
    'siren_shape',
    'state_dict_of',
    'task_entry',
]

#: Prefix of the SIREN location network in the official checkpoints.
OFFICIAL_PREFIX = 'model.location.nnet.'
# Where a SIREN location network's ``layers.*``/``last_layer.*`` keys may sit:
# official checkpoints, TorchGeo's SatCLIP, our task and our LocationEncoder,
# and a bare SirenNet.
_SIREN_PREFIXES = (
    OFFICIAL_PREFIX,
    'location.nnet.',
    'nnet.',
    'location_encoder.network.',
    'network.',
    '',
)
_VISION_LAYERS = {
    'moco_resnet18': 'resnet18',
    'moco_resnet50': 'resnet50',
    'moco_vit16': 'vit_small_patch16_224',
}
# Values of the reference's ``harmonics_calculation`` hyperparameter that we
# reproduce exactly. Its default (and what every released model uses) is
# 'analytic'; 'discretized' interpolates the harmonics bilinearly from a
# one-degree grid, which no mapping of the weights can reproduce.
_HARMONICS_CALCULATIONS = ('analytic', 'closed-form')


def task_entry(checkpoint: object) -> Mapping[str, Any] | None:
    """The entry a `SatCLIPTask` checkpoint carries, or None for other layouts.

    Args:
        checkpoint: What a checkpoint file holds.

    Returns:
        ``checkpoint[CHECKPOINT_KEY]`` when it is a mapping.
    """
    if not isinstance(checkpoint, Mapping):
        return None
    entry = checkpoint.get(_TASK_CHECKPOINT_KEY)
    return entry if isinstance(entry, Mapping) else None


def first_keys(mapping: Mapping[str, Any], count: int = 6) -> str:
    """The first keys of a mapping, and how many there are, for messages."""
    keys = list(mapping)
    shown = ', '.join(repr(key) for key in keys[:count])
    more = f', ... ({len(keys)} in all)' if len(keys) > count else ''
    return f'[{shown}{more}]'


def state_dict_of(checkpoint: Any, label: str) -> dict[str, Tensor]:
    """The tensors of a Lightning checkpoint or plain state dict, by name."""
    state = checkpoint
    if isinstance(checkpoint, Mapping) and 'state_dict' in checkpoint:
        state = checkpoint['state_dict']
    if not isinstance(state, Mapping) or not state:
        found = (
            f'a {type(checkpoint).__name__} with keys {first_keys(checkpoint)}'
            if isinstance(checkpoint, Mapping)
            else f'a {type(checkpoint).__name__}'
        )
        raise CheckpointError(
            f'{label} is not a SatCLIP checkpoint: found {found}; expected a '
            f"Lightning checkpoint with a 'state_dict' or a state dict mapping "
            f'names to tensors'
        )
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(
            f'{label} holds no tensors: found keys {first_keys(state)}; expected '
            f'a state dict mapping names to tensors'
        )
    return tensors


@dataclasses.dataclass(frozen=True)
class SirenShape:
    """A SIREN location network's architecture, read from its tensor shapes."""

    prefix: str
    legendre_polys: int
    hidden_dim: int
    num_hidden_layers: int
    embed_dim: int


def find_siren(state: Mapping[str, Tensor]) -> str | None:
    """The key prefix of the SIREN location network in a state dict, if any."""
    for prefix in _SIREN_PREFIXES:
        if (
            f'{prefix}layers.0.weight' in state
            and f'{prefix}last_layer.weight' in state
        ):
            return prefix
    return None


def siren_shape(state: Mapping[str, Tensor], prefix: str, label: str) -> SirenShape:
    """Infer L, width, depth and embedding size, checking every shape."""

    def get(name: str) -> Tensor:
        key = prefix + name
        if key not in state:
            raise CheckpointError(
                f'{label}: the location network has no {key!r}; a SIREN needs '
                f'weight and bias for every layer (found {first_keys(state)})'
            )
        return state[key]

    count = 0
    while f'{prefix}layers.{count}.weight' in state:
        count += 1
    first = get('layers.0.weight')
    if first.ndim != 2:
        raise CheckpointError(
            f'{label}: {prefix}layers.0.weight has shape {tuple(first.shape)}, '
            f'expected a 2-D (hidden, L^2) matrix'
        )
    hidden, dim_in = (int(size) for size in first.shape)
    degrees = math.isqrt(dim_in)
    if degrees * degrees != dim_in:
        raise CheckpointError(
            f'{label}: the first layer of the location network takes {dim_in} '
            f'inputs, which is not L^2 for any L; a SatCLIP spherical-harmonics '
            f'encoder takes L^2 inputs (100 for L=10, 1600 for L=40), so this is '
            f'not a SatCLIP location encoder (or uses another positional encoding)'
        )
    for index in range(count):
        weight = get(f'layers.{index}.weight')
        bias = get(f'layers.{index}.bias')
        width = dim_in if index == 0 else hidden
        if tuple(weight.shape) != (hidden, width) or tuple(bias.shape) != (hidden,):
            raise CheckpointError(
                f'{label}: {prefix}layers.{index} has weight {tuple(weight.shape)} '
                f'and bias {tuple(bias.shape)}, expected ({hidden}, {width}) and '
                f'({hidden},)'
            )
    last = get('last_layer.weight')
    last_bias = get('last_layer.bias')
    if last.ndim != 2 or last.shape[1] != hidden or last_bias.shape != last.shape[:1]:
        raise CheckpointError(
            f'{label}: {prefix}last_layer has weight {tuple(last.shape)} and bias '
            f'{tuple(last_bias.shape)}, expected (embed_dim, {hidden}) and '
            f'(embed_dim,)'
        )
    return SirenShape(prefix, degrees, hidden, count, int(last.shape[0]))


def check_hyper_parameters(
    shape: SirenShape, hparams: Mapping[str, Any], label: str
) -> str:
    """Check stated hyperparameters against the shapes; the harmonics kind."""
    le_type = hparams.get('le_type')
    if le_type is not None and str(le_type).lower() != 'sphericalharmonics':
        raise CheckpointError(
            f'{label} was trained with positional encoding le_type={le_type!r}; '
            f"this loader reads SatCLIP's 'sphericalharmonics' encoders (all "
            f'released models)'
        )
    pe_type = hparams.get('pe_type')
    if pe_type is not None and str(pe_type).lower() != 'siren':
        raise CheckpointError(
            f'{label} was trained with network pe_type={pe_type!r}; this loader '
            f"reads SatCLIP's 'siren' networks (all released models)"
        )
    inferred = {
        'legendre_polys': shape.legendre_polys,
        'capacity': shape.hidden_dim,
        'num_hidden_layers': shape.num_hidden_layers,
        'embed_dim': shape.embed_dim,
    }
    for name, value in inferred.items():
        stated = hparams.get(name)
        if stated is not None and int(stated) != value:
            raise CheckpointError(
                f'{label}: hyper_parameters say {name}={stated}, but the weights '
                f'have {name}={value} (shapes: {first_keys(inferred)}); the '
                f'checkpoint is inconsistent'
            )
    return _harmonics_calculation(hparams, label)


def _harmonics_calculation(hparams: Mapping[str, Any], label: str) -> str:
    if 'harmonics_calculation' not in hparams:
        # The reference's default, so a checkpoint without the key was trained
        # with the analytic harmonics.
        return 'analytic'
    value = hparams['harmonics_calculation']
    if isinstance(value, str) and value in _HARMONICS_CALCULATIONS:
        return value
    raise CheckpointError(
        f'{label} was trained with harmonics_calculation={value!r}; this loader '
        f"supports 'analytic' (the reference's default and all released models) "
        f"and 'closed-form' (the same functions up to a sign and scale per "
        f"column, folded into the first layer). 'discretized' harmonics are "
        f'interpolated from a one-degree grid and cannot be reproduced'
    )


def closed_form_factors(legendre_polys: int) -> Tensor:
    """Per-column factors turning our harmonics into the reference's closed form.

    The reference's closed form evaluates the Legendre functions with the
    Condon-Shortley phase and without the factor pi of its analytic ``m = 0``
    terms, so column ``(l, m)`` is ``(-1)^m`` (``m != 0``) or ``1/pi``
    (``m = 0``) times ours.

    Args:
        legendre_polys: Number of degrees L.

    Returns:
        ``(L^2,)`` float64 factors in column order (l = 0..L-1, m = -l..l).
    """
    factors = [
        1 / math.pi if order == 0 else (-1.0 if order % 2 else 1.0)
        for degree in range(legendre_polys)
        for order in range(-degree, degree + 1)
    ]
    return torch.tensor(factors, dtype=torch.float64)


def check_finite(tensors: Mapping[str, Tensor], label: str, prefix: str = '') -> None:
    """Refuse NaN or inf weights, which would make every embedding NaN.

    Args:
        tensors: Location-encoder tensors by (relative) key.
        label: The source, for the message.
        prefix: Prefix of the keys in the file, for the message.

    Raises:
        CheckpointError: Naming each tensor with non-finite values and how many.
    """
    bad = []
    for key, tensor in tensors.items():
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        finite = int(torch.isfinite(tensor).sum())
        if finite == tensor.numel():
            continue
        nans = int(torch.isnan(tensor).sum())
        infs = tensor.numel() - finite - nans
        bad.append(
            f'{prefix}{key} has {tensor.numel() - finite} non-finite values '
            f'({nans} NaN, {infs} inf) of {tensor.numel()}'
        )
    if bad:
        raise CheckpointError(
            f'{label}: the location-encoder weights are not finite: '
            f'{"; ".join(bad)}. Such weights make every embedding NaN; the '
            f'checkpoint is damaged (e.g. training diverged) and is not loaded'
        )


def location_state(
    state: Mapping[str, Tensor], shape: SirenShape, calculation: str, label: str
) -> dict[str, Tensor]:
    """The SIREN tensors of an official or TorchGeo layout, in our convention.

    Args:
        state: The checkpoint's state dict.
        shape: The SIREN's inferred shape (with its key prefix).
        calculation: The checkpoint's ``harmonics_calculation``.
        label: The source, for messages.

    Returns:
        The network's state dict (keys ``layers.*``, ``last_layer.*``).

    Raises:
        CheckpointError: If a tensor holds NaN or inf.
    """
    sub = _sub_state(state, shape.prefix)
    check_finite(sub, label, shape.prefix)
    if calculation == 'closed-form':
        # The reference fed W @ (s * y) + b to the first sine, with y our
        # harmonics and s the per-column factors: scaling W's columns by s
        # computes exactly that from y (in float64, rounded once on load).
        weight = sub['layers.0.weight']
        factors = closed_form_factors(shape.legendre_polys).to(weight.device)
        sub['layers.0.weight'] = weight.to(torch.float64) * factors
    return sub


def _sub_state(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
        and key[len(prefix) :].startswith(('layers.', 'last_layer.'))
    }


def location_recipe(config: Mapping[str, Any], label: str) -> dict[str, Any]:
    """Normalise a recorded location-encoder config as the build reads it."""
    recipe: dict[str, Any] = {
        'positional_encoding': str(config.get('positional_encoding')),
        'positional_encoding_args': config.get('positional_encoding_args') or {},
        'network': str(config.get('network')),
        'network_args': config.get('network_args') or {},
        'embed_dim': config.get('embed_dim') or 256,
    }
    for name in ('positional_encoding_args', 'network_args'):
        if not isinstance(recipe[name], Mapping):
            raise CheckpointError(
                f'{label}: the recorded {name} is a '
                f'{type(recipe[name]).__name__}, not a mapping of arguments'
            )
    try:
        recipe['embed_dim'] = int(recipe['embed_dim'])
    except (TypeError, ValueError):
        raise CheckpointError(
            f'{label}: the recorded embed_dim {recipe["embed_dim"]!r} is not a number'
        ) from None
    return recipe


def infer_backbone(
    visual: Mapping[str, Tensor], hparams: Mapping[str, Any], label: str
) -> tuple[str, int, dict[str, Any]]:
    """The image backbone (name, bands, arguments) of ``model.visual.*`` tensors."""
    backbone_args: dict[str, Any] = {}
    if 'head.weight' in visual and 'patch_embed.proj.weight' in visual:
        projection = visual['patch_embed.proj.weight']
        width, patch = int(projection.shape[0]), int(projection.shape[-1])
        if (width, patch) != (384, 16):
            raise CheckpointError(
                f'{label}: the image encoder is a ViT of width {width} and patch '
                f'{patch}; only ViT-S/16 (width 384, patch 16) is supported'
            )
        name = 'vit_small_patch16_224'
        channels = int(projection.shape[1])
        position = visual.get('pos_embed')
        if position is not None:
            size = math.isqrt(int(position.shape[1]) - 1) * patch
            if size != 224:
                backbone_args['img_size'] = size
    elif 'fc.weight' in visual and 'conv1.weight' in visual:
        features = int(visual['fc.weight'].shape[1])
        bottleneck = 'layer1.0.conv3.weight' in visual
        if features == 512 and not bottleneck:
            name = 'resnet18'
        elif features == 2048 and bottleneck:
            name = 'resnet50'
        else:
            raise CheckpointError(
                f'{label}: the image encoder is a ResNet with {features} features; '
                f'only ResNet-18 and ResNet-50 are supported'
            )
        channels = int(visual['conv1.weight'].shape[1])
    else:
        raise CheckpointError(
            f'{label} holds no image encoder of a known kind: expected timm '
            f"ResNet ('model.visual.fc.weight') or ViT ('model.visual.head.weight') "
            f'keys, found {first_keys(visual) if visual else "no model.visual.* keys"}'
            f'. For location embeddings alone use load_location_encoder'
        )
    stated = hparams.get('vision_layers')
    if isinstance(stated, str) and _VISION_LAYERS.get(stated, name) != name:
        raise CheckpointError(
            f'{label}: hyper_parameters say vision_layers={stated!r} but the '
            f'weights are those of a {name}'
        )
    return name, channels, backbone_args
