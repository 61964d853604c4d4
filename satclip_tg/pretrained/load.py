"""Loading pretrained SatCLIP models: `load_location_encoder` and `load_satclip`.

A source is read by `satclip_tg.pretrained.sources`, its layout recognised by
`satclip_tg.pretrained.formats`; here the encoder (or the whole task) is built
from it, after the recorded recipe has been checked against the tensors.
"""

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import torch
from torch import Tensor

from ..checkpoint_format import (
    CHECKPOINT_KEY,
    LOCATION_ENCODER_KEY,
    LOCATION_ENCODER_PREFIX,
    MODEL_CARD_KEY,
)
from ..errors import CheckpointError
from ..location.api import build_location_encoder
from ..location.encoder import LocationEncoder
from ..location.encodings.spherical_harmonics import SphericalHarmonics
from ..location.networks.siren import SirenNet
from .formats import (
    OFFICIAL_PREFIX,
    SirenShape,
    check_finite,
    check_hyper_parameters,
    find_siren,
    first_keys,
    infer_backbone,
    location_recipe,
    location_state,
    siren_shape,
    state_dict_of,
    task_entry,
)
from .sources import ResolvedSource, resolve_source

if TYPE_CHECKING:
    from ..tasks.satclip import SatCLIPTask

__all__ = [
    'PretrainedInfo',
    'get_pretrained_info',
    'load_location_encoder',
    'load_satclip',
    'resolve_device',
]

_INFO_ATTRIBUTE = 'pretrained_info'
# A recipe may imply this many values beyond those of the tensors in the file
# (non-persistent buffers, small lookup tables) before it counts as absurd.
_RECIPE_SLACK = 1 << 24


@dataclasses.dataclass(frozen=True)
class PretrainedInfo:
    """Where a loaded encoder came from.

    Attached to encoders returned by `load_location_encoder` as the attribute
    ``pretrained_info`` (read it with `get_pretrained_info`).

    Attributes:
        source: The source as given (a path, repo id or weights name).
        layout: ``'satclip-official'`` (a released Lightning checkpoint),
            ``'satclip-tg'`` (a `SatCLIPTask` checkpoint) or ``'state-dict'``
            (a plain state dict, e.g. of `torchgeo.models.SatCLIP`).
        path: The local file that was read, if any.
        repo_id: Hugging Face repository, for hub sources.
        revision: Hugging Face revision requested, for hub sources.
        filename: Checkpoint file name inside the repository or cache.
        legendre_polys: Spherical-harmonic degrees L, when the encoder uses them.
        hidden_dim: Width of the SIREN hidden layers, when a SIREN.
        num_hidden_layers: Number of SIREN sine layers, when a SIREN.
        embed_dim: Size of the embedding.
        hyper_parameters: The checkpoint's ``hyper_parameters`` (empty if none).
        model_card: The model card satclip-tg stores in its checkpoints (see
            `satclip_tg.model_card`; render it with `render_model_card`), or
            ``None`` for other checkpoints and older satclip-tg ones.
    """

    source: str
    layout: str
    path: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None
    legendre_polys: int | None = None
    hidden_dim: int | None = None
    num_hidden_layers: int | None = None
    embed_dim: int | None = None
    hyper_parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_card: Mapping[str, Any] | None = None


def get_pretrained_info(encoder: torch.nn.Module) -> PretrainedInfo | None:
    """Return the provenance recorded by `load_location_encoder`, if any.

    Args:
        encoder: A location encoder.

    Returns:
        Its `PretrainedInfo`, or ``None`` for encoders built otherwise.
    """
    info = getattr(encoder, _INFO_ATTRIBUTE, None)
    return info if isinstance(info, PretrainedInfo) else None


def _info_of(loaded: ResolvedSource) -> PretrainedInfo:
    # Where the checkpoint came from; the layout and architecture are filled
    # in once its tensors have been read.
    return PretrainedInfo(
        source=loaded.label,
        layout='state-dict',
        path=None if loaded.path is None else str(loaded.path),
        repo_id=loaded.repo_id,
        revision=loaded.revision,
        filename=loaded.filename,
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``None``, ``'auto'``, ``'cpu'``, ``'cuda'``... into a device.

    Args:
        device: ``None`` (CPU), ``'auto'`` (CUDA when available, else CPU) or
            anything `torch.device` accepts.

    Returns:
        The device.

    Raises:
        ValueError: If the device is not one, or CUDA is requested but not
            available.
    """
    if device is None:
        return torch.device('cpu')
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device {str(device)!r} is not a device: use 'cpu', 'cuda', "
            f"'cuda:N' or 'auto'"
        ) from None
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(
            f'device {str(device)!r} was requested but CUDA is not available; '
            f"use 'cpu' or 'auto'"
        )
    return resolved


def _default(factory: Callable[..., Any], name: str) -> Any:
    return inspect.signature(factory).parameters[name].default


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_recipe(
    recipe: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    label: str,
    prefix: str = '',
) -> None:
    """Refuse a recorded recipe that does not fit the tensors, before building.

    A recipe is only a few numbers, so a damaged or crafted one could make the
    build allocate far more memory than the file holds (legendre_polys=20000
    alone means 3 GB of tables). The shapes it implies are checked first by
    arithmetic (spherical harmonics, SIREN), then on the meta device (any
    registered encoding and network), against the tensors actually present.

    Args:
        recipe: ``positional_encoding``, ``positional_encoding_args``,
            ``network``, ``network_args`` and ``embed_dim``.
        tensors: The location encoder's tensors, keyed as in its state dict.
        label: The source, for messages.
        prefix: Prefix of the keys in the file, for messages.

    Raises:
        CheckpointError: Saying what the recipe implies and what the file has.
    """
    encoding, network = recipe['positional_encoding'], recipe['network']
    encoding_args, network_args = (
        recipe['positional_encoding_args'],
        recipe['network_args'],
    )
    embed_dim = recipe['embed_dim']
    present = sum(tensor.numel() for tensor in tensors.values())
    shown = dict(recipe)

    def refuse(problem: str) -> NoReturn:
        raise CheckpointError(
            f'{label}: the recorded location-encoder recipe {shown} does not fit '
            f'the tensors in the file: {problem}. The checkpoint is damaged or '
            f'was edited; nothing was built'
        )

    features = None
    if encoding == 'sphericalharmonics':
        degrees = encoding_args.get(
            'legendre_polys', _default(SphericalHarmonics, 'legendre_polys')
        )
        if _is_size(degrees) and degrees > 0:
            features = degrees * degrees
            # A network taking L^2 features holds at least that many weights,
            # and the encoding's tables (2 L^2 floats, numpy arrays the meta
            # device does not cover) must not be built for a larger L.
            if features > present:
                refuse(
                    f'legendre_polys={degrees} means {features} harmonics, more '
                    f'than the {present} values of all its tensors together'
                )
    if network == 'siren':
        _check_siren_recipe(network_args, embed_dim, features, tensors, prefix, refuse)
    _check_skeleton(recipe, tensors, present, prefix, refuse)


def _check_siren_recipe(
    network_args: Mapping[str, Any],
    embed_dim: object,
    features: int | None,
    tensors: Mapping[str, Tensor],
    prefix: str,
    refuse: Callable[[str], NoReturn],
) -> None:
    hidden = network_args.get('hidden_dim', _default(SirenNet, 'hidden_dim'))
    layers = network_args.get(
        'num_hidden_layers', _default(SirenNet, 'num_hidden_layers')
    )
    if not (_is_size(hidden) and _is_size(layers) and _is_size(embed_dim)):
        return  # the build refuses these with its own message
    count = 0
    while f'network.layers.{count}.weight' in tensors:
        count += 1
    if layers != count:
        refuse(
            f'num_hidden_layers={layers}, but the file has {count} sine layers '
            f'({prefix}network.layers.*)'
        )
    for index in range(count):
        key = f'network.layers.{index}.weight'
        size = tuple(tensors[key].shape)
        if len(size) != 2 or size[0] != hidden:
            refuse(f'hidden_dim={hidden}, but {prefix}{key} is {size}')
        if index == 0 and features is not None and size[1] != features:
            refuse(
                f'the encoding gives {features} features (legendre_polys^2), '
                f'but {prefix}{key} takes {size[1]} inputs ({size})'
            )
    last = tensors.get('network.last_layer.weight')
    if last is None:
        refuse(f'a SIREN needs {prefix}network.last_layer.weight, absent')
    elif tuple(last.shape) != (embed_dim, hidden):
        refuse(
            f'embed_dim={embed_dim} and hidden_dim={hidden} mean a '
            f'({embed_dim}, {hidden}) output layer, but '
            f'{prefix}network.last_layer.weight is {tuple(last.shape)}'
        )


def _check_skeleton(
    recipe: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    present: int,
    prefix: str,
    refuse: Callable[[str], NoReturn],
) -> None:
    try:
        # On the meta device modules get shapes but no memory.
        with torch.device('meta'):
            skeleton = build_location_encoder(
                str(recipe['positional_encoding']),
                str(recipe['network']),
                embed_dim=recipe['embed_dim'],
                positional_encoding_args=recipe['positional_encoding_args'],
                network_args=recipe['network_args'],
            )
    except Exception:
        # Bad arguments fail the real build below with their own message; a
        # plugin that cannot be built on the meta device is built unchecked.
        return
    expected = skeleton.state_dict()
    problems = []
    for key, value in expected.items():
        actual = tensors.get(key)
        if actual is None:
            problems.append(f'{prefix}{key} {tuple(value.shape)} is absent')
        elif actual.shape != value.shape:
            problems.append(
                f'{prefix}{key} is {tuple(actual.shape)}, the recipe makes it '
                f'{tuple(value.shape)}'
            )
    problems += [
        f'{prefix}{key} is not part of the recipe'
        for key in tensors
        if key not in expected
    ]
    if problems:
        more = f' ... ({len(problems)} in all)' if len(problems) > 5 else ''
        refuse('; '.join(problems[:5]) + more)
    implied = sum(item.numel() for item in skeleton.parameters())
    implied += sum(item.numel() for item in skeleton.buffers())
    if implied > 4 * present + _RECIPE_SLACK:
        refuse(
            f'the recipe implies {implied} parameter and buffer values, the '
            f'file holds {present}'
        )


def _siren_encoder(shape: SirenShape) -> LocationEncoder:
    return build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=shape.embed_dim,
        positional_encoding_args={'legendre_polys': shape.legendre_polys},
        network_args={
            'hidden_dim': shape.hidden_dim,
            'num_hidden_layers': shape.num_hidden_layers,
        },
    )


def _build_from_checkpoint(
    loaded: ResolvedSource, dtype: torch.dtype
) -> tuple[LocationEncoder, PretrainedInfo]:
    checkpoint = loaded.checkpoint
    label = loaded.label
    hparams: Mapping[str, Any] = {}
    if isinstance(checkpoint, Mapping):
        raw = checkpoint.get('hyper_parameters')
        if isinstance(raw, Mapping):
            hparams = dict(raw)
        entry = task_entry(checkpoint)
        if entry is not None and 'state_dict' in checkpoint:
            return _build_from_task(checkpoint, entry, loaded, hparams, dtype)
    state = state_dict_of(checkpoint, label)
    prefix = find_siren(state)
    if prefix is None:
        raise CheckpointError(
            f'{label} holds no SatCLIP location encoder: found keys '
            f'{first_keys(state)}; expected '
            f"'{OFFICIAL_PREFIX}layers.0.weight' ... (official SatCLIP), "
            f"'nnet.layers.0.weight' ... (torchgeo.models.SatCLIP) or a "
            f"satclip-tg checkpoint with a '{CHECKPOINT_KEY}' entry"
        )
    shape = siren_shape(state, prefix, label)
    layout = 'satclip-official' if prefix == OFFICIAL_PREFIX else 'state-dict'
    calculation = check_hyper_parameters(shape, {**hparams, **loaded.expected}, label)
    network_state = location_state(state, shape, calculation, label)
    encoder = _siren_encoder(shape).to(dtype)
    encoder.network.load_state_dict(network_state, strict=True)
    info = dataclasses.replace(
        _info_of(loaded),
        layout=layout,
        legendre_polys=shape.legendre_polys,
        hidden_dim=shape.hidden_dim,
        num_hidden_layers=shape.num_hidden_layers,
        embed_dim=shape.embed_dim,
        hyper_parameters=hparams,
    )
    return encoder, info


def _build_from_task(
    checkpoint: Mapping[str, Any],
    entry: Mapping[str, Any],
    loaded: ResolvedSource,
    hparams: Mapping[str, Any],
    dtype: torch.dtype,
) -> tuple[LocationEncoder, PretrainedInfo]:
    label = loaded.label
    location = entry.get(LOCATION_ENCODER_KEY)
    if not isinstance(location, Mapping):
        raise CheckpointError(
            f"{label}: the '{CHECKPOINT_KEY}' entry has no '{LOCATION_ENCODER_KEY}' "
            f'(found {first_keys(entry)}); the checkpoint is damaged'
        )
    config = location.get('config')
    if not isinstance(config, Mapping):
        config = {
            'positional_encoding': hparams.get('positional_encoding'),
            'positional_encoding_args': hparams.get('positional_encoding_args'),
            'network': hparams.get('network'),
            'network_args': hparams.get('network_args'),
            'embed_dim': hparams.get('embed_dim', 256),
        }
        if not config['positional_encoding'] or not config['network']:
            raise CheckpointError(
                f'{label}: neither the location-encoder config nor '
                f'hyper_parameters name the positional encoding and network'
            )
    prefix = str(location.get('state_dict_prefix', LOCATION_ENCODER_PREFIX))
    state = state_dict_of(checkpoint, label)
    sub = {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
    }
    if not sub:
        raise CheckpointError(
            f'{label}: no tensors under {prefix!r} (found {first_keys(state)})'
        )
    recipe = location_recipe(config, label)
    check_finite(sub, label, prefix)
    _check_recipe(recipe, sub, label, prefix)
    encoder = build_location_encoder(
        recipe['positional_encoding'],
        recipe['network'],
        embed_dim=recipe['embed_dim'],
        positional_encoding_args=recipe['positional_encoding_args'],
        network_args=recipe['network_args'],
    ).to(dtype)
    missing, unexpected = encoder.load_state_dict(sub, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f'{label}: the location-encoder weights do not fit the recorded config '
            f'{dict(config)}: missing {missing[:5]}, unexpected {unexpected[:5]}'
        )
    network_args = dict(config.get('network_args') or {})
    encoding_args = dict(config.get('positional_encoding_args') or {})
    is_siren = config.get('network') == 'siren'
    card = entry.get(MODEL_CARD_KEY)
    info = dataclasses.replace(
        _info_of(loaded),
        layout='satclip-tg',
        legendre_polys=encoding_args.get('legendre_polys')
        if config.get('positional_encoding') == 'sphericalharmonics'
        else None,
        hidden_dim=network_args.get('hidden_dim', 512) if is_siren else None,
        num_hidden_layers=network_args.get('num_hidden_layers', 2)
        if is_siren
        else None,
        embed_dim=int(config.get('embed_dim') or 256),
        hyper_parameters=hparams,
        model_card=card if isinstance(card, Mapping) else None,
    )
    return encoder, info


# --------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------


def load_location_encoder(
    source: Any,
    device: str | torch.device | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
) -> LocationEncoder:
    """Load a pretrained SatCLIP location encoder, without any image backbone.

    The architecture ($L$, SIREN width and depth, embedding size) is inferred
    from the tensor shapes: $L$ from the first layer's $L^2$ inputs, and checked
    against the checkpoint's ``hyper_parameters`` where present. The encoder is
    built with `build_location_encoder('sphericalharmonics', 'siren', ...)` (or
    from the recorded config, for satclip-tg checkpoints), so its `config` is
    set, and it matches `torchgeo.models.SatCLIP` loaded with the same weights
    (float64: within 1e-8 away from $|lat| > 89.95$, where TorchGeo clamps).

    Official checkpoints trained with ``harmonics_calculation='closed-form'``
    are mapped exactly onto these harmonics (their first-layer weight columns
    take the per-column sign and scale between the two); a missing
    ``harmonics_calculation`` means ``'analytic'``, the reference's default.

    Example::

        encoder = load_location_encoder('microsoft/SatCLIP-ViT16-L40')
        encoder = load_location_encoder('/data/satclip-vit16-l40.ckpt')
        with torch.no_grad():
            emb = encoder(torch.tensor([[8.55, 47.37]]))  # (lon, lat)

    Args:
        source: A checkpoint path, an official Hugging Face model id (e.g.
            ``'microsoft/SatCLIP-ResNet50-L10'``), ``'hf://OWNER/REPO/FILE'``, a
            `torchgeo.models.SatCLIP_Weights` member or its name, a name
            registered with `satclip_tg.weights.register_weights` (its file's
            SHA-256 is checked), or an in-memory state dict / checkpoint dict.
        device: Where to put the encoder: ``None`` (CPU), ``'auto'``, ``'cpu'``,
            ``'cuda'`` or a `torch.device`.
        dtype: Parameter dtype. Official weights are stored in float64;
            ``torch.float32`` (default) is within 2e-4 of the float64 result.
        revision: Hugging Face revision to fetch instead of the pinned one.
        cache_dir: Hugging Face cache folder (default: ``HF_HOME``'s).
        local_files_only: Never download: use cached files only.

    Returns:
        The encoder in eval mode. Its ``pretrained_info`` attribute (see
        `get_pretrained_info`) records the source, file and architecture.

    Raises:
        CheckpointError: If the file is unreadable (e.g. truncated) or holds no
            SatCLIP location encoder (the message lists what was found); if a
            location-encoder tensor holds NaN or inf; if a recorded recipe
            does not fit the tensors (checked before anything is built); or
            if ``harmonics_calculation`` is neither ``'analytic'`` nor
            ``'closed-form'``.
        CheckpointUnavailableError: If a remote checkpoint is not cached and
            cannot be downloaded (offline); the message shows how to pass a
            local path instead.
        FileNotFoundError: If a path does not exist.
    """
    loaded = resolve_source(source, revision, cache_dir, local_files_only)
    encoder, info = _build_from_checkpoint(loaded, dtype)
    encoder = encoder.to(resolve_device(device)).eval()
    setattr(encoder, _INFO_ATTRIBUTE, info)
    return encoder


def _check_task_location(
    checkpoint: Mapping[str, Any], task_class: type, label: str
) -> None:
    """Check a satclip-tg checkpoint's location side before Lightning builds it.

    `SatCLIPTask.load_from_checkpoint` builds the location encoder from the
    ``hyper_parameters`` (the task's defaults where one is absent), so those
    are the recipe checked here, against the ``location_encoder.*`` tensors.

    Args:
        checkpoint: The checkpoint dict.
        task_class: `SatCLIPTask`, for its defaults.
        label: The source, for messages.

    Raises:
        CheckpointError: If the weights are not finite or do not fit the recipe.
    """
    raw = checkpoint.get('hyper_parameters')
    hparams: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    names = (
        'positional_encoding',
        'positional_encoding_args',
        'network',
        'network_args',
        'embed_dim',
    )
    config = {
        name: hparams[name] if name in hparams else _default(task_class, name)
        for name in names
    }
    prefix = LOCATION_ENCODER_PREFIX
    state = state_dict_of(checkpoint, label)
    sub = {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
    }
    check_finite(sub, label, prefix)
    _check_recipe(location_recipe(config, label), sub, label, prefix)


def load_satclip(
    source: Any,
    device: str | torch.device | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
) -> 'SatCLIPTask':
    """Load a full SatCLIP model (image and location encoders) as a `SatCLIPTask`.

    * Official checkpoints (local, Hugging Face or TorchGeo weights): the image
      backbone (ResNet-18, ResNet-50 or ViT-S/16) and its input bands are
      inferred from the ``model.visual.*`` shapes (checked against
      ``hyper_parameters['vision_layers']``), the network is built without
      pretrained weights (nothing is downloaded) and every weight, image side
      included, comes from the checkpoint. The location encoder is float32.
    * satclip-tg checkpoints: `SatCLIPPretraining.load_from_checkpoint` with
      ``weights_only=True`` and ``weights=None`` (the checkpoint holds the
      backbone weights, so none are downloaded). Checkpoints saved before the
      task took TorchGeo's argument names (``backbone``, ``backbone_weights``,
      ``gather_negatives``) load the same, without the rename warnings.

    Example::

        task = load_satclip('/data/satclip-resnet50-l40.ckpt')
        with torch.no_grad():
            image_emb, location_emb = task(images, points)

    Args:
        source: As for `load_location_encoder` (not an in-memory state dict).
        device: ``None`` (CPU), ``'auto'``, ``'cpu'``, ``'cuda'`` or a device.
        revision: Hugging Face revision to fetch instead of the pinned one.
        cache_dir: Hugging Face cache folder.
        local_files_only: Never download: use cached files only.

    Returns:
        The `SatCLIPTask` in eval mode.

    Raises:
        CheckpointError: If the checkpoint holds no complete SatCLIP model, or
            its location encoder is refused as by `load_location_encoder`.
        CheckpointUnavailableError: If a remote checkpoint is unavailable.
    """
    from ..renamed_arguments import quiet_renamed_arguments
    from ..tasks.satclip import SatCLIPTask

    loaded = resolve_source(source, revision, cache_dir, local_files_only)
    checkpoint = loaded.checkpoint
    label = loaded.label
    target = resolve_device(device)
    if isinstance(checkpoint, Mapping) and task_entry(checkpoint) is not None:
        if loaded.path is None:
            raise CheckpointError(
                f'{label}: a satclip-tg checkpoint must be given as a file'
            )
        _check_task_location(checkpoint, SatCLIPTask, label)
        # Both names of the weights are cleared: an older checkpoint stores
        # them as backbone_weights, which would otherwise win over weights.
        with quiet_renamed_arguments():
            task: SatCLIPTask = SatCLIPTask.load_from_checkpoint(
                loaded.path,
                map_location='cpu',
                weights_only=True,
                weights=None,
                backbone_weights=None,
            )
        return task.to(target).eval()
    state = state_dict_of(checkpoint, label)
    hparams: Mapping[str, Any] = {}
    if isinstance(checkpoint, Mapping) and isinstance(
        checkpoint.get('hyper_parameters'), Mapping
    ):
        hparams = checkpoint['hyper_parameters']
    if find_siren(state) != OFFICIAL_PREFIX:
        raise CheckpointError(
            f'{label} is not a full SatCLIP checkpoint: found keys '
            f"{first_keys(state)}; expected '{OFFICIAL_PREFIX}*' and "
            f"'model.visual.*' (official) or a satclip-tg task checkpoint. For "
            f'location embeddings alone use load_location_encoder'
        )
    shape = siren_shape(state, OFFICIAL_PREFIX, label)
    calculation = check_hyper_parameters(shape, {**hparams, **loaded.expected}, label)
    network_state = location_state(state, shape, calculation, label)
    visual = {
        key[len('model.visual.') :]: value
        for key, value in state.items()
        if key.startswith('model.visual.')
    }
    backbone, channels, backbone_args = infer_backbone(visual, hparams, label)
    task = SatCLIPTask(
        model=backbone,
        weights=None,
        model_args=backbone_args or None,
        in_channels=channels,
        freeze_backbone=True,
        positional_encoding='sphericalharmonics',
        positional_encoding_args={'legendre_polys': shape.legendre_polys},
        network='siren',
        network_args={
            'hidden_dim': shape.hidden_dim,
            'num_hidden_layers': shape.num_hidden_layers,
        },
        embed_dim=shape.embed_dim,
    )
    mapped = {f'image_encoder.model.{key}': value for key, value in visual.items()}
    mapped.update(
        {
            f'{LOCATION_ENCODER_PREFIX}network.{key}': value
            for key, value in network_state.items()
        }
    )
    if 'model.logit_scale' in state:
        mapped['logit_scale'] = state['model.logit_scale'].reshape(())
    else:
        mapped['logit_scale'] = task.logit_scale.detach().clone()
    missing, unexpected = task.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f'{label}: the image weights do not fit a {backbone} with {channels} '
            f'bands: missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}'
        )
    return task.to(target).eval()
