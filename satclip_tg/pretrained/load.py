"""Pretrained SatCLIP models: the official checkpoints, ours and TorchGeo's.

`load_location_encoder` returns the location encoder alone; it reads only the
location-encoder tensors of a checkpoint and never builds or downloads an
image backbone. `load_satclip` returns the full image + location model as a
`SatCLIPTask`, with the image weights taken from the checkpoint itself.

Sources understood by both:

* a local checkpoint file: an official SatCLIP Lightning checkpoint
  (`satclip-*.ckpt`), a checkpoint written by our `SatCLIPTask`, or (for
  `load_location_encoder` only) a plain state dict of
  `torchgeo.models.SatCLIP` or of a SIREN location network;
* a Hugging Face repo id of an official model, e.g.
  ``'microsoft/SatCLIP-ViT16-L40'`` (downloaded once with `huggingface_hub`
  and read from its cache afterwards), or ``'hf://owner/repo/file.ckpt'``;
* a TorchGeo weights enum member such as
  `torchgeo.models.SatCLIP_Weights.SATCLIP_VIT16_L40`, or its name as a string
  (read from the torch hub cache, downloaded by torch hub if absent);
* a name registered with `satclip_tg.weights.register_weights` or
  ``satclip-tg weights register`` (the file's SHA-256 is checked on load);
* for `load_location_encoder`, an in-memory state dict (a mapping of names to
  tensors) or checkpoint dict.

All files are read with ``torch.load(..., weights_only=True)``.
"""

import dataclasses
import enum
import hashlib
import inspect
import math
import os
import pathlib
import pickle
import re
import urllib.error
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import torch
from torch import Tensor

from .location.encoder import LocationEncoder, build_location_encoder
from .location.encodings.spherical_harmonics import SphericalHarmonics
from .location.networks.siren import SirenNet

if TYPE_CHECKING:
    from .tasks.satclip import SatCLIPTask

__all__ = [
    'OFFICIAL_CHECKPOINTS',
    'CheckpointError',
    'CheckpointUnavailableError',
    'OfficialCheckpoint',
    'PretrainedInfo',
    'get_pretrained_info',
    'load_location_encoder',
    'load_satclip',
    'resolve_device',
]

# Key of the entry our SatCLIPTask adds to its checkpoints (the same string as
# `satclip_tg.tasks.satclip.CHECKPOINT_KEY`, which is not imported here so that
# loading a location encoder does not import Lightning).
_TASK_CHECKPOINT_KEY = 'satclip_tg'
_INFO_ATTRIBUTE = 'pretrained_info'
_OFFICIAL_PREFIX = 'model.location.nnet.'
# Where a SIREN location network's ``layers.*``/``last_layer.*`` keys may sit:
# official checkpoints, TorchGeo's SatCLIP, our task and our LocationEncoder,
# and a bare SirenNet.
_SIREN_PREFIXES = (
    _OFFICIAL_PREFIX,
    'location.nnet.',
    'nnet.',
    'location_encoder.network.',
    'network.',
    '',
)
_REPO_ID = re.compile(r'^[A-Za-z0-9][\w.-]*/[\w.-]+$')
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
# A recipe may imply this many values beyond those of the tensors in the file
# (non-persistent buffers, small lookup tables) before it counts as absurd.
_RECIPE_SLACK = 1 << 24


class CheckpointError(ValueError):
    """A checkpoint cannot be read or is not of a layout this loader knows."""


class CheckpointUnavailableError(FileNotFoundError):
    """A remote checkpoint is neither cached nor downloadable (e.g. offline)."""


@dataclasses.dataclass(frozen=True)
class OfficialCheckpoint:
    """Where one released SatCLIP model lives on Hugging Face.

    Attributes:
        repo_id: Hugging Face model repository.
        filename: Checkpoint file inside the repository.
        backbone: Image backbone of the model (our registry name).
        legendre_polys: Number of spherical-harmonic degrees L.
        revision: Pinned git revision, or ``None`` for ``main`` (not pinned).
        sha256: Expected SHA-256 of the file, or ``None`` when not recorded.
    """

    repo_id: str
    filename: str
    backbone: str
    legendre_polys: int
    revision: str | None = None
    sha256: str | None = None


def _official(
    backbone: str, short: str, degrees: int, revision: str | None = None
) -> OfficialCheckpoint:
    name = {'resnet18': 'ResNet18', 'resnet50': 'ResNet50'}.get(backbone, 'ViT16')
    return OfficialCheckpoint(
        repo_id=f'microsoft/SatCLIP-{name}-L{degrees}',
        filename=f'satclip-{short}-l{degrees}.ckpt',
        backbone=backbone,
        legendre_polys=degrees,
        revision=revision,
    )


#: The six released SatCLIP models by Hugging Face repo id. Only ViT16-L40 has
#: a pinned revision (the one TorchGeo pins); no SHA-256 is recorded for any
#: of them (none is published), so downloads are not hash-checked.
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    entry.repo_id: entry
    for entry in (
        _official('resnet18', 'resnet18', 10),
        _official('resnet18', 'resnet18', 40),
        _official('resnet50', 'resnet50', 10),
        _official('resnet50', 'resnet50', 40),
        _official('vit_small_patch16_224', 'vit16', 10),
        _official(
            'vit_small_patch16_224',
            'vit16',
            40,
            revision='0ef2acc0b91d3c8cfdf4a0cc03207095989287ab',
        ),
    )
}


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


# --------------------------------------------------------------------------
# Resolving a source to a loaded checkpoint
# --------------------------------------------------------------------------


@dataclasses.dataclass
class _Loaded:
    checkpoint: Any
    info: PretrainedInfo
    path: pathlib.Path | None = None
    # Architecture the source promises (e.g. L of an official repo id).
    expected: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _describe_source(source: object) -> str:
    if _is_weights_enum(source):
        return f'{type(source).__name__}.{getattr(source, "name", "?")}'
    if isinstance(source, Mapping):
        return f'<in-memory {type(source).__name__} with {len(source)} entries>'
    return str(source)


def _is_weights_enum(source: object) -> bool:
    return (
        isinstance(source, enum.Enum)
        and hasattr(source, 'url')
        and hasattr(source, 'meta')
    )


def _resolve(
    source: object,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
) -> _Loaded:
    label = _describe_source(source)
    if isinstance(source, Mapping):
        return _Loaded(source, PretrainedInfo(source=label, layout='state-dict'))
    if _is_weights_enum(source):
        return _from_torchgeo_weights(source, label, local_files_only)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f'source must be a checkpoint path, a Hugging Face repo id, a TorchGeo '
            f'SatCLIP_Weights member or a state dict, got {type(source).__name__}'
        )
    text = os.fspath(source)
    if text.startswith('hf://'):
        return _from_hub_uri(text, revision, cache_dir, local_files_only)
    path = pathlib.Path(text).expanduser()
    if path.is_file():
        checkpoint = _read_checkpoint(path)
        return _Loaded(
            checkpoint,
            PretrainedInfo(
                source=label, layout='state-dict', path=str(path), filename=path.name
            ),
            path,
        )
    if path.is_dir():
        raise CheckpointError(
            f'{path} is a folder; pass the checkpoint file inside it (e.g. '
            f'{path / "satclip-vit16-l40.ckpt"})'
        )
    if text.startswith('SatCLIP_Weights.'):
        from torchgeo.models import get_weight

        try:
            weights = get_weight(text)
        except ValueError:
            raise CheckpointError(
                f'{text!r} is not a TorchGeo weights name; TorchGeo has '
                f'SatCLIP_Weights.SATCLIP_VIT16_L40'
            ) from None
        return _from_torchgeo_weights(weights, label, local_files_only)
    official = _find_official(text)
    if official is not None:
        loaded = _from_hub(
            official.repo_id,
            official.filename,
            revision or official.revision,
            official.sha256,
            cache_dir,
            local_files_only,
            label,
        )
        loaded.expected = {'legendre_polys': official.legendre_polys}
        return loaded
    registered = _from_registry(text, label)
    if registered is not None:
        return registered
    known = ', '.join(OFFICIAL_CHECKPOINTS)
    if _REPO_ID.match(text) and not text.endswith(('.ckpt', '.pt', '.pth')):
        raise CheckpointError(
            f'{text!r} is neither an existing file nor a known SatCLIP model. '
            f'Known Hugging Face models: {known}. For another repository give '
            f"the file too, as 'hf://{text}/FILE.ckpt'"
        )
    raise FileNotFoundError(
        f'checkpoint {str(path)!r} does not exist. Pass the path of a local '
        f'checkpoint file, a Hugging Face model id ({known}), a TorchGeo '
        f"weights name such as 'SatCLIP_Weights.SATCLIP_VIT16_L40', or a name "
        f'registered with `satclip-tg weights register` (see `satclip-tg '
        f'weights list`)'
    )


def _from_registry(text: str, label: str) -> _Loaded | None:
    """Resolve a name registered in `satclip_tg.weights`, checking its hash."""
    from .weights import find_weight

    entry = find_weight(text)
    if entry is None:
        return None
    path = entry.verify()
    return _Loaded(
        _read_checkpoint(path),
        PretrainedInfo(
            source=label, layout='state-dict', path=str(path), filename=path.name
        ),
        path,
    )


def _find_official(text: str) -> OfficialCheckpoint | None:
    wanted = text.strip().lower()
    for repo_id, entry in OFFICIAL_CHECKPOINTS.items():
        if wanted in (repo_id.lower(), repo_id.split('/')[1].lower()):
            return entry
    return None


def _from_hub_uri(
    text: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
) -> _Loaded:
    rest = text[len('hf://') :]
    if '@' in rest:
        rest, revision = rest.rsplit('@', 1)
    parts = rest.split('/')
    if len(parts) < 3 or not all(parts):
        raise CheckpointError(
            f"{text!r} is not of the form 'hf://OWNER/REPO/FILE.ckpt[@REVISION]'"
        )
    repo_id, filename = '/'.join(parts[:2]), '/'.join(parts[2:])
    official = OFFICIAL_CHECKPOINTS.get(repo_id)
    sha256 = official.sha256 if official and official.filename == filename else None
    return _from_hub(
        repo_id, filename, revision, sha256, cache_dir, local_files_only, text
    )


def _offline_hint(repo_id: str, filename: str) -> str:
    return (
        f'To work offline, download the file once on a connected machine, e.g. '
        f'`hf download {repo_id} {filename}` (it lands in the Hugging Face cache, '
        f'HF_HOME, which is then used without a connection) or from '
        f'https://huggingface.co/{repo_id}/blob/main/{filename}, and pass its '
        f"local path instead: load_location_encoder('/path/to/{filename}') or "
        f'`satclip-tg embed --encoder /path/to/{filename} ...`'
    )


def _from_hub(
    repo_id: str,
    filename: str,
    revision: str | None,
    sha256: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    label: str,
) -> _Loaded:
    import huggingface_hub

    try:
        downloaded = huggingface_hub.hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=None if cache_dir is None else pathlib.Path(cache_dir),
            local_files_only=local_files_only,
        )
    except OSError as error:
        # LocalEntryNotFoundError (offline and not cached), connection errors
        # and OfflineModeIsEnabled are all OSErrors; so are HTTP errors.
        name = type(error).__name__
        offline = (
            local_files_only
            or isinstance(error, ConnectionError)
            or 'LocalEntryNotFound' in name
            or 'Offline' in name
        )
        if offline:
            raise CheckpointUnavailableError(
                f'{filename} of {repo_id} (revision {revision or "main"}) is not '
                f'in the Hugging Face cache and cannot be downloaded now '
                f'({name}: {error}). {_offline_hint(repo_id, filename)}'
            ) from error
        raise CheckpointUnavailableError(
            f'could not fetch {filename} from {repo_id} (revision '
            f'{revision or "main"}): {name}: {error}. '
            f'{_offline_hint(repo_id, filename)}'
        ) from error
    path = pathlib.Path(str(downloaded))
    if sha256 is not None:
        _check_sha256(path, sha256)
    return _Loaded(
        _read_checkpoint(path),
        PretrainedInfo(
            source=label,
            layout='state-dict',
            path=str(path),
            repo_id=repo_id,
            revision=revision,
            filename=filename,
        ),
        path,
    )


def _check_sha256(path: pathlib.Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open('rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        raise CheckpointError(
            f'{path} has SHA-256 {digest.hexdigest()}, expected {expected}: the '
            f'file is corrupt or not the released one; delete it and download '
            f'it again'
        )


def _from_torchgeo_weights(weights: Any, label: str, local_files_only: bool) -> _Loaded:
    url = str(weights.url)
    filename = pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name
    cached = pathlib.Path(torch.hub.get_dir()) / 'checkpoints' / filename
    meta = dict(weights.meta)
    info = PretrainedInfo(source=label, layout='state-dict', filename=filename)
    if cached.is_file():
        info = dataclasses.replace(info, path=str(cached))
        return _Loaded(_read_checkpoint(cached), info, cached, _architecture_of(meta))
    hint = (
        f'Download {url} on a connected machine and either put it at {cached} '
        f'(the torch hub cache, TORCH_HOME) or pass its local path instead of '
        f'{label}'
    )
    if local_files_only:
        raise CheckpointUnavailableError(
            f'{label} is not in the torch hub cache ({cached}) and downloads are '
            f'disabled. {hint}'
        )
    try:
        checkpoint = torch.hub.load_state_dict_from_url(
            url, map_location='cpu', weights_only=True, check_hash=True
        )
    except (OSError, urllib.error.URLError) as error:
        raise CheckpointUnavailableError(
            f'{label} is not in the torch hub cache ({cached}) and could not be '
            f'downloaded ({type(error).__name__}: {error}). {hint}'
        ) from error
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(
            f'the download of {label} could not be read ({error}); delete {cached} '
            f'and try again'
        ) from error
    path = cached if cached.is_file() else None
    if path is not None:
        info = dataclasses.replace(info, path=str(path))
    return _Loaded(checkpoint, info, path, _architecture_of(meta))


def _architecture_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    names = ('legendre_polys', 'capacity', 'num_hidden_layers', 'embed_dim')
    return {name: meta[name] for name in names if name in meta}


def _read_checkpoint(path: pathlib.Path) -> Any:
    size = path.stat().st_size
    expected = (
        'a SatCLIP checkpoint: an official Lightning .ckpt (57-130 MB), one '
        'written by satclip-tg, or a state dict saved with torch.save'
    )
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        if 'weights_only' in str(error) or 'Weights only' in str(error):
            raise CheckpointError(
                f'{path} holds Python objects that safe loading '
                f'(torch.load(..., weights_only=True)) refuses to run, so it is '
                f'not a plain checkpoint; expected {expected}. Detail: '
                f'{str(error).splitlines()[0]}'
            ) from error
        raise CheckpointError(
            f'{path} ({size} bytes) is not a readable PyTorch file ({error}); '
            f'expected {expected}'
        ) from error
    except (RuntimeError, EOFError, ValueError, KeyError) as error:
        raise CheckpointError(
            f'{path} ({size} bytes) could not be read: {error}. The file is '
            f'truncated (e.g. an interrupted download) or not a PyTorch '
            f'checkpoint; expected {expected}. Delete it and download it again'
        ) from error


# --------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------


def _first_keys(mapping: Mapping[str, Any], count: int = 6) -> str:
    keys = list(mapping)
    shown = ', '.join(repr(key) for key in keys[:count])
    more = f', ... ({len(keys)} in all)' if len(keys) > count else ''
    return f'[{shown}{more}]'


def _state_dict_of(checkpoint: Any, label: str) -> dict[str, Tensor]:
    state = checkpoint
    if isinstance(checkpoint, Mapping) and 'state_dict' in checkpoint:
        state = checkpoint['state_dict']
    if not isinstance(state, Mapping) or not state:
        found = (
            f'a {type(checkpoint).__name__} with keys {_first_keys(checkpoint)}'
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
            f'{label} holds no tensors: found keys {_first_keys(state)}; expected '
            f'a state dict mapping names to tensors'
        )
    return tensors


@dataclasses.dataclass(frozen=True)
class _SirenShape:
    prefix: str
    legendre_polys: int
    hidden_dim: int
    num_hidden_layers: int
    embed_dim: int


def _find_siren(state: Mapping[str, Tensor]) -> str | None:
    for prefix in _SIREN_PREFIXES:
        if (
            f'{prefix}layers.0.weight' in state
            and f'{prefix}last_layer.weight' in state
        ):
            return prefix
    return None


def _siren_shape(state: Mapping[str, Tensor], prefix: str, label: str) -> _SirenShape:
    def get(name: str) -> Tensor:
        key = prefix + name
        if key not in state:
            raise CheckpointError(
                f'{label}: the location network has no {key!r}; a SIREN needs '
                f'weight and bias for every layer (found {_first_keys(state)})'
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
    return _SirenShape(prefix, degrees, hidden, count, int(last.shape[0]))


def _check_hyper_parameters(
    shape: _SirenShape, hparams: Mapping[str, Any], label: str
) -> str:
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
                f'have {name}={value} (shapes: {_first_keys(inferred)}); the '
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


def _closed_form_factors(legendre_polys: int) -> Tensor:
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


def _check_finite(tensors: Mapping[str, Tensor], label: str, prefix: str = '') -> None:
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


def _location_state(
    state: Mapping[str, Tensor], shape: _SirenShape, calculation: str, label: str
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
    _check_finite(sub, label, shape.prefix)
    if calculation == 'closed-form':
        # The reference fed W @ (s * y) + b to the first sine, with y our
        # harmonics and s the per-column factors: scaling W's columns by s
        # computes exactly that from y (in float64, rounded once on load).
        weight = sub['layers.0.weight']
        factors = _closed_form_factors(shape.legendre_polys).to(weight.device)
        sub['layers.0.weight'] = weight.to(torch.float64) * factors
    return sub


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


def _siren_encoder(shape: _SirenShape) -> LocationEncoder:
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


def _sub_state(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
        and key[len(prefix) :].startswith(('layers.', 'last_layer.'))
    }


def _build_from_checkpoint(
    loaded: _Loaded, dtype: torch.dtype
) -> tuple[LocationEncoder, PretrainedInfo]:
    checkpoint = loaded.checkpoint
    label = loaded.info.source
    hparams: Mapping[str, Any] = {}
    if isinstance(checkpoint, Mapping):
        raw = checkpoint.get('hyper_parameters')
        if isinstance(raw, Mapping):
            hparams = dict(raw)
        entry = checkpoint.get(_TASK_CHECKPOINT_KEY)
        if isinstance(entry, Mapping) and 'state_dict' in checkpoint:
            return _build_from_task(checkpoint, entry, loaded, hparams, dtype)
    state = _state_dict_of(checkpoint, label)
    prefix = _find_siren(state)
    if prefix is None:
        raise CheckpointError(
            f'{label} holds no SatCLIP location encoder: found keys '
            f'{_first_keys(state)}; expected '
            f"'{_OFFICIAL_PREFIX}layers.0.weight' ... (official SatCLIP), "
            f"'nnet.layers.0.weight' ... (torchgeo.models.SatCLIP) or a "
            f"satclip-tg checkpoint with a '{_TASK_CHECKPOINT_KEY}' entry"
        )
    shape = _siren_shape(state, prefix, label)
    layout = 'satclip-official' if prefix == _OFFICIAL_PREFIX else 'state-dict'
    calculation = _check_hyper_parameters(shape, {**hparams, **loaded.expected}, label)
    network_state = _location_state(state, shape, calculation, label)
    encoder = _siren_encoder(shape).to(dtype)
    encoder.network.load_state_dict(network_state, strict=True)
    info = dataclasses.replace(
        loaded.info,
        layout=layout,
        legendre_polys=shape.legendre_polys,
        hidden_dim=shape.hidden_dim,
        num_hidden_layers=shape.num_hidden_layers,
        embed_dim=shape.embed_dim,
        hyper_parameters=hparams,
    )
    return encoder, info


def _recipe(config: Mapping[str, Any], label: str) -> dict[str, Any]:
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


def _build_from_task(
    checkpoint: Mapping[str, Any],
    entry: Mapping[str, Any],
    loaded: _Loaded,
    hparams: Mapping[str, Any],
    dtype: torch.dtype,
) -> tuple[LocationEncoder, PretrainedInfo]:
    label = loaded.info.source
    location = entry.get('location_encoder')
    if not isinstance(location, Mapping):
        raise CheckpointError(
            f"{label}: the '{_TASK_CHECKPOINT_KEY}' entry has no 'location_encoder' "
            f'(found {_first_keys(entry)}); the checkpoint is damaged'
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
    prefix = str(location.get('state_dict_prefix', 'location_encoder.'))
    state = _state_dict_of(checkpoint, label)
    sub = {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
    }
    if not sub:
        raise CheckpointError(
            f'{label}: no tensors under {prefix!r} (found {_first_keys(state)})'
        )
    recipe = _recipe(config, label)
    _check_finite(sub, label, prefix)
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
    card = entry.get('model_card')
    info = dataclasses.replace(
        loaded.info,
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
    loaded = _resolve(source, revision, cache_dir, local_files_only)
    encoder, info = _build_from_checkpoint(loaded, dtype)
    encoder = encoder.to(resolve_device(device)).eval()
    setattr(encoder, _INFO_ATTRIBUTE, info)
    return encoder


def _infer_backbone(
    visual: Mapping[str, Tensor], hparams: Mapping[str, Any], label: str
) -> tuple[str, int, dict[str, Any]]:
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
            f'keys, found {_first_keys(visual) if visual else "no model.visual.* keys"}'
            f'. For location embeddings alone use load_location_encoder'
        )
    stated = hparams.get('vision_layers')
    if isinstance(stated, str) and _VISION_LAYERS.get(stated, name) != name:
        raise CheckpointError(
            f'{label}: hyper_parameters say vision_layers={stated!r} but the '
            f'weights are those of a {name}'
        )
    return name, channels, backbone_args


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
    prefix = 'location_encoder.'
    state = _state_dict_of(checkpoint, label)
    sub = {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
    }
    _check_finite(sub, label, prefix)
    _check_recipe(_recipe(config, label), sub, label, prefix)


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
    from .renamed_arguments import quiet_renamed_arguments
    from .tasks.satclip import SatCLIPTask

    loaded = _resolve(source, revision, cache_dir, local_files_only)
    checkpoint = loaded.checkpoint
    label = loaded.info.source
    target = resolve_device(device)
    if isinstance(checkpoint, Mapping) and isinstance(
        checkpoint.get(_TASK_CHECKPOINT_KEY), Mapping
    ):
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
    state = _state_dict_of(checkpoint, label)
    hparams: Mapping[str, Any] = {}
    if isinstance(checkpoint, Mapping) and isinstance(
        checkpoint.get('hyper_parameters'), Mapping
    ):
        hparams = checkpoint['hyper_parameters']
    if _find_siren(state) != _OFFICIAL_PREFIX:
        raise CheckpointError(
            f'{label} is not a full SatCLIP checkpoint: found keys '
            f"{_first_keys(state)}; expected '{_OFFICIAL_PREFIX}*' and "
            f"'model.visual.*' (official) or a satclip-tg task checkpoint. For "
            f'location embeddings alone use load_location_encoder'
        )
    shape = _siren_shape(state, _OFFICIAL_PREFIX, label)
    calculation = _check_hyper_parameters(shape, {**hparams, **loaded.expected}, label)
    network_state = _location_state(state, shape, calculation, label)
    visual = {
        key[len('model.visual.') :]: value
        for key, value in state.items()
        if key.startswith('model.visual.')
    }
    backbone, channels, backbone_args = _infer_backbone(visual, hparams, label)
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
            f'location_encoder.network.{key}': value
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
