"""Where pretrained SatCLIP weights come from, read into memory.

A source is one of: a local checkpoint file; a released model on the Hugging
Face hub (by repo id, e.g. ``'microsoft/SatCLIP-ViT16-L40'``, or as
``'hf://OWNER/REPO/FILE.ckpt[@REVISION]'``); a member of TorchGeo's
`SatCLIP_Weights` enum or its name; a name registered with
`satclip_tg.weights.register_weights` (its SHA-256 is checked); or an
in-memory state dict. `resolve_source` reads any of them into a
`ResolvedSource`, with ``torch.load(..., weights_only=True)``; what the
tensors mean is `satclip_tg.pretrained.formats`' business.
"""

import dataclasses
import enum
import os
import pathlib
import pickle
import re
import urllib.error
import urllib.parse
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError, CheckpointUnavailableError

__all__ = [
    'OFFICIAL_CHECKPOINTS',
    'OfficialCheckpoint',
    'ResolvedSource',
    'find_official',
    'read_checkpoint',
    'resolve_source',
]

_REPO_ID = re.compile(r'^[A-Za-z0-9][\w.-]*/[\w.-]+$')


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


@dataclasses.dataclass
class ResolvedSource:
    """A source read into memory, and where it came from.

    Attributes:
        checkpoint: What the file (or the in-memory source) holds.
        label: The source as given, for messages and `PretrainedInfo.source`.
        path: The local file that was read, if any.
        filename: Checkpoint file name inside the repository or cache.
        repo_id: Hugging Face repository, for hub sources.
        revision: Hugging Face revision requested, for hub sources.
        expected: Architecture the source promises (e.g. L of an official
            repo id), checked against the tensors.
    """

    checkpoint: Any
    label: str
    path: pathlib.Path | None = None
    filename: str | None = None
    repo_id: str | None = None
    revision: str | None = None
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


def resolve_source(
    source: object,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
) -> ResolvedSource:
    """Read a source (path, repo id, weights enum, registered name, dict).

    Args:
        source: What `satclip_tg.pretrained.load_location_encoder` accepts.
        revision: Hugging Face revision to fetch instead of the pinned one.
        cache_dir: Hugging Face cache folder (default: ``HF_HOME``'s).
        local_files_only: Never download: use cached files only.

    Returns:
        The checkpoint and where it came from.

    Raises:
        CheckpointError: If a file is unreadable, a folder, or an unknown name.
        CheckpointUnavailableError: If a remote file is neither cached nor
            downloadable.
        FileNotFoundError: If a path does not exist.
        TypeError: If the source is of no kind understood.
    """
    label = _describe_source(source)
    if isinstance(source, Mapping):
        return ResolvedSource(source, label)
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
        return ResolvedSource(read_checkpoint(path), label, path, path.name)
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
    official = find_official(text)
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


def _from_registry(text: str, label: str) -> ResolvedSource | None:
    """Resolve a name registered in `satclip_tg.weights`, checking its hash."""
    from .registry import find_weight

    entry = find_weight(text)
    if entry is None:
        return None
    path = entry.verify()
    return ResolvedSource(read_checkpoint(path), label, path, path.name)


def find_official(text: str) -> OfficialCheckpoint | None:
    """The released model a repo id or its bare name (any case) names, if any."""
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
) -> ResolvedSource:
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
) -> ResolvedSource:
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
    return ResolvedSource(
        read_checkpoint(path),
        label,
        path,
        filename,
        repo_id=repo_id,
        revision=revision,
    )


def _check_sha256(path: pathlib.Path, expected: str) -> None:
    from ..features.manifest import file_sha256

    digest = file_sha256(path)
    if digest != expected.lower():
        raise CheckpointError(
            f'{path} has SHA-256 {digest}, expected {expected}: the '
            f'file is corrupt or not the released one; delete it and download '
            f'it again'
        )


def _from_torchgeo_weights(
    weights: Any, label: str, local_files_only: bool
) -> ResolvedSource:
    url = str(weights.url)
    filename = pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name
    cached = pathlib.Path(torch.hub.get_dir()) / 'checkpoints' / filename
    expected = _architecture_of(dict(weights.meta))
    if cached.is_file():
        return ResolvedSource(
            read_checkpoint(cached), label, cached, filename, expected=expected
        )
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
    return ResolvedSource(checkpoint, label, path, filename, expected=expected)


def _architecture_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    names = ('legendre_polys', 'capacity', 'num_hidden_layers', 'embed_dim')
    return {name: meta[name] for name in names if name in meta}


def read_checkpoint(path: pathlib.Path) -> Any:
    """Read a checkpoint file safely (``weights_only=True``), on the CPU.

    Args:
        path: The file.

    Returns:
        What it holds.

    Raises:
        CheckpointError: If it is truncated, not a PyTorch file, or holds
            Python objects that safe loading refuses.
    """
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
