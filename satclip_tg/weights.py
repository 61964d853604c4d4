"""A registry of your own SatCLIP checkpoints, by name.

TorchGeo names its pretrained weights (``get_weight('SatCLIP_Weights.
SATCLIP_VIT16_L40')``); this module does the same for checkpoints you
trained. A registered name is a source of `load_location_encoder` (and so of
``satclip-tg embed --encoder NAME`` and the benchmark), and the file's
SHA-256, recorded at registration, is checked on every load, so a checkpoint
that was overwritten or damaged since is refused instead of silently used.

Registrations live either in this process (``register_weights(...)``) or,
with ``persist=True`` or ``satclip-tg weights register NAME CHECKPOINT``, in
a JSON file that later sessions read: ``$SATCLIP_TG_WEIGHTS`` if set, else
``$XDG_CONFIG_HOME/satclip-tg/weights.json`` (``~/.config/...`` by default).
Names cannot shadow the released models (``microsoft/SatCLIP-ViT16-L40``,
``SatCLIP-ViT16-L40``, ``SatCLIP_Weights.*``). An existing file of the same
name as a registered one wins over the name when loading (paths come first).

The look-ups (`get_weight`, `find_weight`, `list_weights`, `WeightsEntry`) are
defined in `satclip_tg.pretrained.registry`, which the loader reads names from
without importing the loader back; they are importable from here.
"""

import datetime
import os
import pathlib
from typing import Any

from .errors import WeightsRegistryError
from .pretrained import registry
from .pretrained.registry import (
    FILE_SUFFIXES,
    NAME_PATTERN,
    REGISTRY_VARIABLE,
    WeightsEntry,
    find_weight,
    get_weight,
    list_weights,
    read_registry_file,
    registry_path,
    unknown_name,
    write_registry_file,
)
from .pretrained.sources import find_official

__all__ = [
    'REGISTRY_VARIABLE',
    'WeightsEntry',
    'WeightsRegistryError',
    'find_weight',
    'get_weight',
    'list_weights',
    'register_weights',
    'registry_path',
    'unregister_weights',
]


def _shadowed(name: str) -> str | None:
    """The released model a name would shadow, if any."""
    official = find_official(name)
    if official is not None:
        return official.repo_id
    if name.lower().startswith('satclip_weights.'):
        return "TorchGeo's SatCLIP_Weights"
    return None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise WeightsRegistryError(
            f'weights name {name!r} is not allowed: use a letter followed by up '
            f'to 99 letters, digits, ".", "_", "+" or "-" (no "/": that reads as '
            f'a path or a Hugging Face repo id), e.g. "my-satclip-l10"'
        )
    if name.lower().endswith(FILE_SUFFIXES):
        raise WeightsRegistryError(
            f'weights name {name!r} ends like a file name; choose a name without '
            f'a file suffix, e.g. {name.rsplit(".", 1)[0]!r}'
        )
    shadowed = _shadowed(name)
    if shadowed is not None:
        raise WeightsRegistryError(
            f'weights name {name!r} would shadow the released model {shadowed}; '
            f'released models load by their own name, choose another name for '
            f'your checkpoint'
        )


def _architecture(path: pathlib.Path) -> dict[str, Any]:
    """Load the checkpoint's location encoder once: it must be one."""
    from .pretrained import get_pretrained_info, load_location_encoder

    encoder = load_location_encoder(path)
    info = get_pretrained_info(encoder)
    config = encoder.config or {}
    meta: dict[str, Any] = {
        'layout': info.layout if info else None,
        'positional_encoding': config.get('positional_encoding'),
        'network': config.get('network'),
        'embed_dim': config.get('embed_dim'),
    }
    if info is not None and info.legendre_polys is not None:
        meta['legendre_polys'] = info.legendre_polys
    return meta


def register_weights(
    name: str,
    path: str | os.PathLike[str],
    *,
    description: str = '',
    persist: bool = False,
    overwrite: bool = False,
) -> WeightsEntry:
    """Register a checkpoint under a name.

    The file is loaded once with `load_location_encoder` (so only files
    that hold a location encoder are accepted) and its SHA-256 recorded.

    Example::

        register_weights('my-l10', 'runs/demo-20260101-120000/satclip-demo.ckpt')
        encoder = load_location_encoder('my-l10')

    Args:
        name: The name (a letter, then letters, digits, ``._+-``).
        path: The checkpoint file.
        description: Free text shown by ``satclip-tg weights list``.
        persist: Also write it to the user registry file (`registry_path`),
            for later sessions; otherwise it lasts for this process.
        overwrite: Replace an existing registration of the name.

    Returns:
        The entry.

    Raises:
        WeightsRegistryError: If the name is malformed, shadows a released
            model, or is taken (without ``overwrite``); or the registry file
            is unreadable.
        FileNotFoundError: If the file does not exist.
        CheckpointError: If the file holds no location encoder.
    """
    from .features.manifest import file_sha256

    _check_name(name)
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f'cannot register {name!r}: checkpoint {str(path)!r} does not exist '
            f'or is not a file'
        )
    file = file.resolve()
    stored = read_registry_file(registry_path())
    existing = {**stored, **registry.SESSION}.get(name)
    if existing is not None and not overwrite:
        raise WeightsRegistryError(
            f'weights name {name!r} is registered already (for {existing.path}); '
            f'pass overwrite=True (--overwrite) to replace it, or choose another '
            f'name'
        )
    entry = WeightsEntry(
        name=name,
        path=str(file),
        sha256=file_sha256(file),
        description=description,
        registered=datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
        meta=_architecture(file),
        persistent=persist,
    )
    if persist:
        write_registry_file(registry_path(), {**stored, name: entry})
        registry.SESSION.pop(name, None)
    else:
        registry.SESSION[name] = entry
    return entry


def unregister_weights(name: str) -> WeightsEntry:
    """Remove a registration, from this process and the registry file.

    Args:
        name: The registered name.

    Returns:
        The entry removed (the file's when both had one).

    Raises:
        ValueError: If the name is not registered.
    """
    stored = read_registry_file(registry_path())
    removed = registry.SESSION.pop(name, None)
    if name in stored:
        removed = stored.pop(name)
        write_registry_file(registry_path(), stored)
    if removed is None:
        raise unknown_name(name, {**stored, **registry.SESSION})
    return removed
