"""The ``satclip-tg`` command line."""

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .plugins import COMPONENT_KINDS, ComponentConflictError, get_registry

__all__ = ['main']


def _list_plugins(args: argparse.Namespace) -> int:
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
        rows += [
            (
                COMPONENT_KINDS[c.kind][1],
                c.name,
                c.distribution or '-',
                c.version or '-',
            )
            for c in components
        ]
    header = ('kind', 'name', 'distribution', 'version')
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print(
            '  '.join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    return status


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``satclip-tg`` command.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog='satclip-tg',
        description='SatCLIP location encoders for TorchGeo.',
    )
    parser.add_argument(
        '--version', action='version', version=f'%(prog)s {__version__}'
    )
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    plugins = commands.add_parser(
        'plugins',
        help='list registered components (built-ins and installed plugins)',
        description='List every registered component: kind, name, providing '
        'distribution and version.',
    )
    plugins.add_argument(
        '--kind',
        choices=list(COMPONENT_KINDS),
        help='only list components of this kind',
    )
    plugins.set_defaults(handler=_list_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status.
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.handler(args)
    return status
