"""``satclip-tg demo``: the main job, SatCLIP pretraining on real pixels.

Builds the Blue Marble data set, pretrains with ``configs/demo.yaml``, and
writes the checkpoint, an embedding map and a summary into a new run folder;
see `satclip_tg.demo.pipeline`.
"""

import argparse
import sys
from typing import Any

from .data import _fraction, _positive

__all__ = ['register', 'run']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'real-pixel SatCLIP pretraining demo on NASA Blue Marble patches'


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    from ..demo.settings import DEMO_DATA, DEMO_VIEWS

    parser = subparsers.add_parser(
        'demo',
        help=HELP,
        description='Build the Blue Marble data set, pretrain a SatCLIP location '
        'encoder on it, and write the checkpoint, embedding_map.png and '
        'summary.txt into a new folder under --runs-dir. Arguments after -- go '
        'to LightningCLI, e.g. -- --trainer.max_epochs=2.',
    )
    parser.add_argument(
        '--config', default='configs/demo.yaml', help='fit config (%(default)s)'
    )
    parser.add_argument(
        '--cached-config',
        default='configs/demo_cached.yaml',
        help='overlay that trains on the cached features (%(default)s)',
    )
    parser.add_argument(
        '--views',
        type=_positive,
        default=DEMO_VIEWS,
        help='views per patch in the feature cache (%(default)s)',
    )
    parser.add_argument(
        '--no-check',
        dest='check',
        action='store_false',
        help='skip the quick check against the random initialisation',
    )
    parser.add_argument(
        '--runs-dir', default='runs', help='parent of the run folder (%(default)s)'
    )
    parser.add_argument(
        '--data-root', default=None, help="data folder (default: the config's root)"
    )
    parser.add_argument('--n', type=_positive, help=f'patches ({DEMO_DATA.n})')
    parser.add_argument(
        '--patch-size',
        type=_positive,
        help=f'patch side in pixels ({DEMO_DATA.patch_size})',
    )
    parser.add_argument('--seed', type=int, help=f'sampling seed ({DEMO_DATA.seed})')
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        '--land-fraction',
        type=_fraction,
        metavar='F',
        help=f'share of points on land ({DEMO_DATA.land_fraction})',
    )
    where.add_argument(
        '--global',
        dest='whole_globe',
        action='store_true',
        help='points uniform over the whole globe',
    )
    parser.add_argument(
        '--relief',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='shaded relief as bands 4-6 of the patches (default: '
        f"{'on' if DEMO_DATA.relief else 'off'}; the config's in_channels must "
        'match: 6 with, 3 without)',
    )
    parser.add_argument(
        '--threads',
        type=_positive,
        help='PyTorch CPU threads (default: all cores)',
    )
    parser.add_argument(
        'lightning_args',
        nargs=argparse.REMAINDER,
        help='-- then extra LightningCLI arguments',
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success, 1 if the config or the Blue Marble data are missing.
    """
    from ..datasets.bluemarble import BasemapDataNotFoundError
    from ..demo.pipeline import run_demo
    from ..demo.settings import DEMO_DATA, DemoData

    extra = list(args.lightning_args)
    if extra[:1] == ['--']:
        extra = extra[1:]
    data = DemoData(
        n=DEMO_DATA.n if args.n is None else args.n,
        patch_size=DEMO_DATA.patch_size if args.patch_size is None else args.patch_size,
        seed=DEMO_DATA.seed if args.seed is None else args.seed,
        land_fraction=None
        if args.whole_globe
        else DEMO_DATA.land_fraction
        if args.land_fraction is None
        else args.land_fraction,
        relief=DEMO_DATA.relief if args.relief is None else args.relief,
    )

    def say(message: str) -> None:
        print(f'[satclip-tg demo] {message}', flush=True)

    try:
        run_demo(
            config=args.config,
            cached_config=args.cached_config,
            views=args.views,
            check=args.check,
            runs_dir=args.runs_dir,
            data_root=args.data_root,
            data=data,
            lightning_args=extra,
            threads=args.threads,
            say=say,
        )
    except (FileNotFoundError, BasemapDataNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    return 0
