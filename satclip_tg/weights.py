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
"""

import dataclasses
import datetime
import difflib
import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from .atomic import atomic_output
from .pretrained import OFFICIAL_CHECKPOINTS, CheckpointError

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

#: Environment variable naming the user registry file.
REGISTRY_VARIABLE = 'SATCLIP_TG_WEIGHTS'
#: Value of the registry file's ``format`` entry.
REGISTRY_FORMAT = 'satclip-tg weights registry'
#: Version of the registry file's layout.
REGISTRY_VERSION = 1
# Names look like identifiers with dots and dashes: no slash (it would read
# as a path or a Hugging Face repo id) and no scheme.
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_.+-]{0,99}$')
_FILE_SUFFIXES = ('.ckpt', '.pt', '.pth', '.bin', '.safetensors')

# Registrations of this process, by name.
_SESSION: dict[str, 'WeightsEntry'] = {}


class WeightsRegistryError(ValueError):
    """A registration is refused, or the registry file cannot be used."""


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One registered checkpoint.

    Attributes:
        name: The registered name.
        path: Absolute path of the checkpoint file.
        sha256: SHA-256 of the file when it was registered.
        description: Free text.
        registered: When it was registered (UTC, ISO 8601).
        meta: The encoder's architecture at registration (``layout``,
            ``positional_encoding``, ``network``, ``embed_dim``,
            ``legendre_polys`` where known), like TorchGeo's ``Weights.meta``.
        persistent: Whether the entry is in the registry file (else only in
            this process).
    """

    name: str
    path: str
    sha256: str
    description: str = ''
    registered: str = ''
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    persistent: bool = False

    def verify(self) -> pathlib.Path:
        """Check that the file exists and is the one registered.

        Returns:
            The checkpoint path.

        Raises:
            FileNotFoundError: If the file is gone.
            CheckpointError: If its SHA-256 differs from the recorded one.
        """
        from .features.manifest import file_sha256

        path = pathlib.Path(self.path)
        if not path.is_file():
            raise FileNotFoundError(
                f'registered weights {self.name!r}: {path} does not exist any '
                f'more; register the new location with `satclip-tg weights '
                f'register {self.name} NEW_PATH --overwrite`, or remove the name '
                f'with `satclip-tg weights remove {self.name}`'
            )
        digest = file_sha256(path)
        if digest != self.sha256:
            raise CheckpointError(
                f'registered weights {self.name!r}: {path} changed since it was '
                f'registered (SHA-256 {digest[:16]}..., recorded '
                f'{self.sha256[:16]}...). If the new file is meant, register it '
                f'again: `satclip-tg weights register {self.name} {path} '
                f'--overwrite`'
            )
        return path

    def to_json(self) -> dict[str, Any]:
        """The entry as stored in the registry file (without name, persistent)."""
        return {
            'path': self.path,
            'sha256': self.sha256,
            'description': self.description,
            'registered': self.registered,
            'meta': dict(self.meta),
        }


def registry_path() -> pathlib.Path:
    """The user registry file.

    Returns:
        ``$SATCLIP_TG_WEIGHTS``, else ``$XDG_CONFIG_HOME/satclip-tg/weights.json``
        (``~/.config/satclip-tg/weights.json`` when unset).
    """
    explicit = os.environ.get(REGISTRY_VARIABLE)
    if explicit:
        return pathlib.Path(explicit).expanduser()
    config = os.environ.get('XDG_CONFIG_HOME') or '~/.config'
    return pathlib.Path(config).expanduser() / 'satclip-tg' / 'weights.json'


def _read_file(path: pathlib.Path) -> dict[str, WeightsEntry]:
    if not path.is_file():
        return {}
    fix = (
        f'fix or delete it (or point {REGISTRY_VARIABLE} at another file); '
        f'it only holds registrations made with `satclip-tg weights register`'
    )
    try:
        document = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise WeightsRegistryError(
            f'the weights registry {path} cannot be read ({error}); {fix}'
        ) from error
    if not isinstance(document, Mapping) or document.get('format') != REGISTRY_FORMAT:
        raise WeightsRegistryError(
            f'{path} is not a satclip-tg weights registry (no format '
            f'{REGISTRY_FORMAT!r}); {fix}'
        )
    if document.get('version') != REGISTRY_VERSION:
        raise WeightsRegistryError(
            f'{path} is a weights registry of version {document.get("version")}; '
            f'this satclip-tg reads version {REGISTRY_VERSION}: upgrade satclip-tg '
            f'or {fix}'
        )
    entries = {}
    raw = document.get('weights')
    for name, item in (raw if isinstance(raw, Mapping) else {}).items():
        if not isinstance(item, Mapping) or not {'path', 'sha256'} <= set(item):
            raise WeightsRegistryError(
                f'{path}: entry {name!r} lacks a path or sha256; {fix}'
            )
        entries[str(name)] = WeightsEntry(
            name=str(name),
            path=str(item['path']),
            sha256=str(item['sha256']),
            description=str(item.get('description', '')),
            registered=str(item.get('registered', '')),
            meta=dict(item.get('meta') or {}),
            persistent=True,
        )
    return entries


def _write_file(path: pathlib.Path, entries: Mapping[str, WeightsEntry]) -> None:
    document = {
        'format': REGISTRY_FORMAT,
        'version': REGISTRY_VERSION,
        'weights': {name: entries[name].to_json() for name in sorted(entries)},
    }
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text(json.dumps(document, indent=2) + '\n', encoding='utf-8')


def _all_entries() -> dict[str, WeightsEntry]:
    # Registrations of this process override the file's for this process.
    return {**_read_file(registry_path()), **_SESSION}


def _shadowed(name: str) -> str | None:
    """The released model a name would shadow, if any."""
    wanted = name.lower()
    for repo_id in OFFICIAL_CHECKPOINTS:
        if wanted in (repo_id.lower(), repo_id.split('/')[1].lower()):
            return repo_id
    if wanted.startswith('satclip_weights.'):
        return "TorchGeo's SatCLIP_Weights"
    return None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise WeightsRegistryError(
            f'weights name {name!r} is not allowed: use a letter followed by up '
            f'to 99 letters, digits, ".", "_", "+" or "-" (no "/": that reads as '
            f'a path or a Hugging Face repo id), e.g. "my-satclip-l10"'
        )
    if name.lower().endswith(_FILE_SUFFIXES):
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
    stored = _read_file(registry_path())
    existing = {**stored, **_SESSION}.get(name)
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
        _write_file(registry_path(), {**stored, name: entry})
        _SESSION.pop(name, None)
    else:
        _SESSION[name] = entry
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
    stored = _read_file(registry_path())
    removed = _SESSION.pop(name, None)
    if name in stored:
        removed = stored.pop(name)
        _write_file(registry_path(), stored)
    if removed is None:
        raise _unknown(name, {**stored, **_SESSION})
    return removed


def _unknown(name: str, entries: Mapping[str, WeightsEntry]) -> ValueError:
    close = difflib.get_close_matches(name, list(entries), n=1)
    hint = f' Did you mean {close[0]!r}?' if close else ''
    known = ', '.join(sorted(entries)) or 'none'
    return ValueError(
        f'{name!r} is not a registered weights name (registered: {known}; '
        f'registry file {registry_path()}).{hint} Register a checkpoint with '
        f'`satclip-tg weights register NAME CHECKPOINT`'
    )


def get_weight(name: str) -> WeightsEntry:
    """The registered checkpoint of a name, as TorchGeo's `get_weight`.

    Args:
        name: A registered name.

    Returns:
        Its entry (load it with ``load_location_encoder(name)``; the file's
        SHA-256 is checked then, or now with `WeightsEntry.verify`).

    Raises:
        ValueError: If the name is not registered (with a close match).
        WeightsRegistryError: If the registry file is unreadable.
    """
    entries = _all_entries()
    if name not in entries:
        raise _unknown(name, entries)
    return entries[name]


def find_weight(name: str) -> WeightsEntry | None:
    """The entry of a name, or None when it is not registered.

    Args:
        name: Any text (a source given to `load_location_encoder`).

    Returns:
        The entry, or None.

    Raises:
        WeightsRegistryError: If the registry file is unreadable.
    """
    # Paths and file names are never names, so a damaged registry file does
    # not get in the way of loading them.
    if not _NAME.match(name) or name.lower().endswith(_FILE_SUFFIXES):
        return None
    return _all_entries().get(name)


def list_weights() -> list[str]:
    """The registered names, of this process and the registry file, sorted.

    Returns:
        The names.
    """
    return sorted(_all_entries())
