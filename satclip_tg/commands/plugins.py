"""``satclip-tg plugins``: list the registered components."""

import argparse
import sys
from typing import Any

__all__ = ['register', 'run']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'list registered components (built-ins and installed plugins)'


def register(subparsers: Any) -> None:
    """Add the ``plugins`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    from ..plugins import COMPONENT_KINDS

    parser = subparsers.add_parser(
        'plugins',
        help=HELP,
        description='List every registered component: kind, name, providing '
        'distribution and version. Image backbones also accept any timm model '
        'name (timm.list_models()), which is not listed.',
    )
    parser.add_argument(
        '--kind', choices=list(COMPONENT_KINDS), help='only list this kind'
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List the components.

    Args:
        args: Parsed arguments.

    Returns:
        0, or 1 when a kind could not be listed because of a name clash.
    """
    from ..plugins import COMPONENT_KINDS, ComponentConflictError, get_registry
    from ..plugins.manager import DISABLE_VARIABLE, disabled_plugin_names

    registry = get_registry()
    kinds = [args.kind] if args.kind else list(COMPONENT_KINDS)
    rows = []
    status = 0
    for kind in kinds:
        try:
            components = registry.components(kind)
        except ComponentConflictError as error:
            print(f'error: {error}', file=sys.stderr)
            status = 1
            continue
        label = COMPONENT_KINDS[kind][1]
        rows += [
            (label, c.name, c.distribution or '-', c.version or '-') for c in components
        ]
    header = ('kind', 'name', 'distribution', 'version')
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print('  '.join(cells).rstrip())
    if registry.disabled:
        skipped = ', '.join(
            f'{name} ({dist} {version})'
            for name, dist, version in sorted(registry.disabled)
        )
        print(f'disabled by {DISABLE_VARIABLE}: {skipped}')
    elif disabled_plugin_names():
        print(
            f'{DISABLE_VARIABLE} names no installed plugin: '
            f'{", ".join(disabled_plugin_names())}'
        )
    return status
