"""``satclip-tg weights``: name your own checkpoints (register, list, remove)."""

import argparse
import sys
from typing import Any

__all__ = ['register', 'run']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'register your own checkpoints by name (register, list, remove)'

_EPILOG = """\
examples:
  satclip-tg weights register my-l10 runs/demo-20260101-120000/satclip-demo.ckpt \\
      --description 'demo run, 20k Blue Marble patches'
  satclip-tg weights list
  satclip-tg embed --encoder my-l10 --input sites.csv --output sites.parquet
  satclip-tg weights remove my-l10

Registrations are kept in $SATCLIP_TG_WEIGHTS, else
$XDG_CONFIG_HOME/satclip-tg/weights.json (~/.config/satclip-tg/weights.json).
The file's SHA-256 is recorded, and a file changed since is refused on load.
"""


def register(subparsers: Any) -> None:
    """Add the ``weights`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    parser = subparsers.add_parser(
        'weights',
        help=HELP,
        description='Keep a registry of your own checkpoints: a registered\n'
        'name loads like a released model (load_location_encoder(NAME),\n'
        'satclip-tg embed --encoder NAME).',
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    add = actions.add_parser('register', help='register a checkpoint under a name')
    add.add_argument('name', help='the name (letters, digits, ._+-)')
    add.add_argument('checkpoint', help='the checkpoint file')
    add.add_argument('--description', default='', help='free text')
    add.add_argument(
        '--overwrite', action='store_true', help='replace a registration of NAME'
    )
    show = actions.add_parser('list', help='list the registered checkpoints')
    show.add_argument(
        '--verify',
        action='store_true',
        help='also check that each file exists and has its recorded SHA-256',
    )
    remove = actions.add_parser('remove', help='remove a registration')
    remove.add_argument('name')
    parser.set_defaults(handler=run)


def _architecture(meta: Any) -> str:
    if not isinstance(meta, dict):
        return '-'
    parts = [f'{meta.get("positional_encoding")}+{meta.get("network")}']
    if meta.get('legendre_polys') is not None:
        parts.append(f'L={meta["legendre_polys"]}')
    parts.append(f'{meta.get("embed_dim")}-d')
    return ' '.join(parts)


def run(args: argparse.Namespace) -> int:
    """Run one action.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success; 1 when ``list --verify`` finds a missing or changed file.
    """
    from ..weights import (
        get_weight,
        list_weights,
        register_weights,
        registry_path,
        unregister_weights,
    )

    if args.action == 'register':
        entry = register_weights(
            args.name,
            args.checkpoint,
            description=args.description,
            persist=True,
            overwrite=args.overwrite,
        )
        print(
            f'registered {entry.name}: {entry.path} ({_architecture(entry.meta)}, '
            f'sha256 {entry.sha256[:12]}) in {registry_path()}'
        )
        return 0
    if args.action == 'remove':
        entry = unregister_weights(args.name)
        print(f'removed {entry.name} ({entry.path}) from {registry_path()}')
        return 0
    names = list_weights()
    if not names:
        print(f'no registered weights (registry: {registry_path()})')
        return 0
    status = 0
    rows = [('name', 'architecture', 'sha256', 'path', 'description')]
    for name in names:
        entry = get_weight(name)
        path = entry.path
        if args.verify:
            try:
                entry.verify()
            except (OSError, ValueError) as error:
                print(f'error: {error}', file=sys.stderr)
                path += ' (MISSING)' if isinstance(error, OSError) else ' (CHANGED)'
                status = 1
        scope = '' if entry.persistent else ' (this process only)'
        rows.append(
            (
                name,
                _architecture(entry.meta),
                entry.sha256[:12],
                path,
                entry.description + scope,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print('  '.join(cells).rstrip())
    print(f'registry: {registry_path()}')
    return status
