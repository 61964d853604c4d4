"""The registry of named checkpoints, as the loader reads it.

`satclip_tg.weights` registers checkpoints under names (it loads each file
once, so it needs the loader); this module holds what the loader needs to
resolve a name (the entries, the registry file, the look-ups), and so imports
nothing of the loader. Its public names are importable from
`satclip_tg.weights`.
"""

import dataclasses
import difflib
import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from ..atomic import atomic_output
from ..errors import CheckpointError, WeightsRegistryError

__all__ = [
    'FILE_SUFFIXES',
    'NAME_PATTERN',
    'REGISTRY_FORMAT',
    'REGISTRY_VARIABLE',
    'REGISTRY_VERSION',
    'SESSION',
    'WeightsEntry',
    'all_entries',
    'find_weight',
    'get_weight',
    'list_weights',
    'read_registry_file',
    'registry_path',
    'unknown_name',
    'write_registry_file',
]

#: Environment variable naming the user registry file.
REGISTRY_VARIABLE = 'SATCLIP_TG_WEIGHTS'
#: Value of the registry file's ``format`` entry.
REGISTRY_FORMAT = 'satclip-tg weights registry'
#: Version of the registry file's layout.
REGISTRY_VERSION = 1
#: What a name looks like: identifiers with dots and dashes, no slash (it
#: would read as a path or a Hugging Face repo id) and no scheme.
NAME_PATTERN = re.compile(r'^[A-Za-z][A-Za-z0-9_.+-]{0,99}$')
#: Endings that make a name read as a file name, refused in names.
FILE_SUFFIXES = ('.ckpt', '.pt', '.pth', '.bin', '.safetensors')

#: Registrations of this process, by name.
SESSION: dict[str, 'WeightsEntry'] = {}


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
        from ..features.manifest import file_sha256

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


def read_registry_file(path: pathlib.Path) -> dict[str, WeightsEntry]:
    """The entries of a registry file (none if it does not exist), checked."""
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


def write_registry_file(
    path: pathlib.Path, entries: Mapping[str, WeightsEntry]
) -> None:
    """Write a registry file atomically, entries sorted by name."""
    document = {
        'format': REGISTRY_FORMAT,
        'version': REGISTRY_VERSION,
        'weights': {name: entries[name].to_json() for name in sorted(entries)},
    }
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text(json.dumps(document, indent=2) + '\n', encoding='utf-8')


def all_entries() -> dict[str, WeightsEntry]:
    """Every registration: the file's, then this process's, which win."""
    return {**read_registry_file(registry_path()), **SESSION}


def unknown_name(name: str, entries: Mapping[str, WeightsEntry]) -> ValueError:
    """The error for a name that is not registered, with a close match."""
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
    entries = all_entries()
    if name not in entries:
        raise unknown_name(name, entries)
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
    if not NAME_PATTERN.match(name) or name.lower().endswith(FILE_SUFFIXES):
        return None
    return all_entries().get(name)


def list_weights() -> list[str]:
    """The registered names, of this process and the registry file, sorted.

    Returns:
        The names.
    """
    return sorted(all_entries())
