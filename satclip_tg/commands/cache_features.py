"""``satclip-tg cache-features``: cache a frozen backbone's features of every tile.

``satclip-tg cache-features --config configs/sh_l40_vit.yaml --output DIR
--views 16`` reads the same training config a user passes to ``fit``, runs
its frozen backbone (without the projection) over every tile for V views and
writes the features to DIR; then ``satclip-tg fit --config
configs/sh_l40_vit.yaml --config configs/cached.yaml --data.init_args.features
DIR`` trains from them. See `satclip_tg.features`.
"""

import argparse
import sys
from typing import Any

from .data import _positive

__all__ = ['register', 'run']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = "cache a training config's frozen-backbone features of every tile"

_EPILOG = """\
example:
  satclip-tg cache-features --config configs/sh_l40_vit.yaml \\
      --output features/sh_l40_vit --views 16
  satclip-tg fit --config configs/sh_l40_vit.yaml --config configs/cached.yaml \\
      --data.init_args.features features/sh_l40_vit

View 0 is the evaluation view (centre crop); views 1..V-1 are the config's
training augmentations (random crop, flips, blur), drawn from a pure function
of (seed, tile, view). A killed run resumes: run the same command again.
LightningCLI options for the config go after --, e.g.
  ... --views 4 -- --data.init_args.root /data/s2-100k
"""


def register(subparsers: Any) -> None:
    """Add the ``cache-features`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    parser = subparsers.add_parser(
        'cache-features',
        help=HELP,
        description="Run a training config's frozen image backbone, without its "
        'projection, over every tile for V views and store the pooled '
        'features (float16 by default) in memory-mappable .npy shards with a '
        'manifest.json.',
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        '--config',
        action='append',
        required=True,
        help='training config (the one given to fit); repeat for overlays',
    )
    parser.add_argument('--output', required=True, help='cache folder')
    parser.add_argument(
        '--views', type=_positive, required=True, help='views per tile (V)'
    )
    parser.add_argument(
        '--dtype',
        choices=('float16', 'float32'),
        default='float16',
        help='storage dtype (%(default)s)',
    )
    parser.add_argument(
        '--shard-size',
        type=_positive,
        default=256,
        help='tiles per shard file (%(default)s)',
    )
    parser.add_argument(
        '--batch-size',
        type=_positive,
        default=256,
        help='images per backbone forward pass (%(default)s)',
    )
    parser.add_argument(
        '--seed',
        type=int,
        default=None,
        help="seed of the training views (default: the data module's seed)",
    )
    parser.add_argument(
        '--num-workers',
        type=int,
        default=None,
        help="workers decoding tiles (default: the data module's num_workers)",
    )
    parser.add_argument(
        '--accelerator', default=None, help="(default: the config's trainer)"
    )
    parser.add_argument('--devices', default=None, help="(default: the config's)")
    parser.add_argument(
        '--precision',
        default=None,
        help="(default: the config's on a GPU, 32-true on the CPU)",
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace a cache in --output that was made with other settings',
    )
    parser.add_argument(
        'lightning_args',
        nargs=argparse.REMAINDER,
        help='-- then LightningCLI options for the config',
    )
    parser.set_defaults(handler=run)


def _trainer_settings(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Where to run: the config's trainer settings, overridden by the flags."""
    import torch

    trainer = config.get('trainer', {}) or {}
    settings: dict[str, Any] = {
        key: trainer.get(key)
        for key in ('accelerator', 'devices', 'strategy', 'num_nodes', 'precision')
        if trainer.get(key) is not None
    }
    if args.accelerator is not None:
        settings['accelerator'] = args.accelerator
    if args.devices is not None:
        settings['devices'] = args.devices
    accelerator = str(settings.get('accelerator', 'auto'))
    on_gpu = accelerator in ('auto', 'gpu', 'cuda') and torch.cuda.is_available()
    if args.precision is not None:
        settings['precision'] = args.precision
    elif not on_gpu:
        # bf16 autocast on a CPU is slow and only an approximation there.
        settings['precision'] = '32-true'
    return settings


def run(args: argparse.Namespace) -> int:
    """Cache the features.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success, 1 on a configuration or data error.
    """
    from ..cli import lightning_cli
    from ..datasets.s2_100k import SatCLIPDatasetNotFoundError
    from ..features.manifest import FeatureCacheError
    from ..features.writer import cache_features
    from ..resources import HostMemoryError

    extra = list(args.lightning_args)
    if extra[:1] == ['--']:
        extra = extra[1:]
    options = [f'--config={path}' for path in args.config]
    # Only the model and the data module are used: no logger, no callbacks.
    options += ['--trainer.logger=false', '--trainer.callbacks=[]', *extra]
    cli = lightning_cli(options, run=False)
    try:
        report = cache_features(
            cli.model,
            cli.datamodule,
            args.output,
            views=args.views,
            dtype=args.dtype,
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            seed=args.seed,
            num_workers=args.num_workers,
            overwrite=args.overwrite,
            trainer_kwargs=_trainer_settings(cli.config, args),
        )
    except (FeatureCacheError, HostMemoryError, SatCLIPDatasetNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    manifest = report.manifest
    print(
        f'feature cache complete: {report.output} ({manifest.tiles} tiles x '
        f'{manifest.views} views x {manifest.feature_dim} {manifest.dtype}; '
        f'{manifest.shards - report.shards_before} shards written now, '
        f'{report.shards_before} before) in {report.seconds:.0f} s'
    )
    print(
        f'train on it: satclip-tg fit {" ".join("--config " + c for c in args.config)}'
        f' --config configs/cached.yaml --data.init_args.features {report.output}'
    )
    return 0
