"""``satclip-tg plugins``: list the registered components."""

import argparse
import sys
from typing import Any

from ..plugins import COMPONENT_KINDS, ComponentConflictError, get_registry

__all__ = ['register', 'run']


def register(subparsers: Any) -> None:
    """Add the ``plugins`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    parser = subparsers.add_parser(
        'plugins',
        help='list registered components (built-ins and installed plugins)',
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
    return status
