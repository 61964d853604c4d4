"""The main job: SatCLIP pretraining on Blue Marble patches, end to end.

`run_demo` does, with a message per step:

1. build the Blue Marble data set (`build_bluemarble`; a no-op when an
   identical one exists);
2. cache the frozen MOSAIKS features of every patch for V views
   (`cache_demo_features`, the same as ``satclip-tg cache-features --config
   configs/demo.yaml``; a no-op when the cache matches the config);
3. ``satclip-tg fit --config configs/demo.yaml --config
   configs/demo_cached.yaml`` in this process (`pretrain_on_cache`), logging
   into a new run folder;
4. load the location encoder back from the checkpoint
   (`satclip_tg.load_location_encoder`) and draw the map of its embeddings
   (`write_embedding_map`);
5. a quick check (`quick_check`): a few benchmark tasks, the pretrained
   encoder against the same architecture at random initialisation;
6. write ``summary.txt`` with the validation metrics, the check and timings.

Beside the map, ``MODEL_CARD.md`` renders the checkpoint's model card (data,
config, final metrics, versions; `satclip_tg.model_card`).

Everything lands in one new folder ``<runs_dir>/demo-YYYYmmdd-HHMMSS/``
(suffixed ``-2``, ``-3``, ... if it exists): earlier runs are never touched.
"""

import json
import math
import os
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import numpy.typing as npt
import torch
from lightning.pytorch.callbacks import Callback

from ..atomic import atomic_output
from ..checkpoint_format import CHECKPOINT_KEY
from ..datasets.bluemarble import (
    build_bluemarble,
    read_land_mask,
    read_manifest,
    settings_of,
)
from ..model_card import render_model_card
from ..pretrained import get_pretrained_info, load_location_encoder
from .embedding_map import global_grid, write_embedding_map
from .settings import DEMO_DATA, DEMO_VIEWS, DemoData

__all__ = [
    'CHECKPOINT_NAME',
    'DEMO_DATA',
    'DEMO_VIEWS',
    'QUICK_CHECK_PROBE',
    'QUICK_CHECK_TASKS',
    'DemoData',
    'DemoOutputs',
    'QuickCheck',
    'cache_demo_features',
    'features_dir',
    'new_run_dir',
    'pretrain_on_cache',
    'quick_check',
    'run_demo',
    'training_density',
]

#: File name of the trained model in the run folder.
CHECKPOINT_NAME = 'satclip-demo.ckpt'
#: File name of the final metrics (JSON) in the run folder.
METRICS_NAME = 'final_metrics.json'
#: File name of the map in the run folder.
MAP_NAME = 'embedding_map.png'
#: File name of the summary in the run folder.
SUMMARY_NAME = 'summary.txt'
#: File name of the checkpoint's model card (Markdown) in the run folder.
MODEL_CARD_NAME = 'MODEL_CARD.md'
#: Files that LightningCLI and the CSV logger write into the run folder.
_LOG_FILES = ('config.yaml', 'hparams.yaml', 'metrics.csv')


class DemoOutputs(Callback):
    """Save the trained model and the final metrics when ``fit`` ends.

    Unlike `ModelCheckpoint` this also runs under ``fast_dev_run``, so that
    the whole demo pipeline can be tested in seconds.
    """

    def __init__(self, run_dir: str) -> None:
        """Initialize the callback.

        Args:
            run_dir: Folder receiving ``satclip-demo.ckpt`` and
                ``final_metrics.json``.
        """
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the checkpoint and the metrics of the last validation.

        Args:
            trainer: The trainer.
            pl_module: The trained task.
        """
        # Every rank takes part in saving; only rank 0 writes the file. The
        # weights alone (no optimiser state): a third of the size.
        partial = self.run_dir / f'.{CHECKPOINT_NAME}.partial'
        trainer.save_checkpoint(partial, weights_only=True)
        if not trainer.is_global_zero:
            return
        os.replace(partial, self.run_dir / CHECKPOINT_NAME)
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if isinstance(value, torch.Tensor) and value.numel() == 1
        }
        datamodule: Any = getattr(trainer, 'datamodule', None)
        val_dataset = getattr(datamodule, 'val_dataset', None)
        record = {
            'metrics': metrics,
            'epochs': trainer.current_epoch,
            'global_step': trainer.global_step,
            'batch_size': getattr(datamodule, 'batch_size', None),
            'val_size': len(val_dataset) if val_dataset is not None else 0,
            'fast_dev_run': bool(getattr(trainer, 'fast_dev_run', False)),
        }
        with atomic_output(self.run_dir / METRICS_NAME, overwrite=True) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + '\n')


def training_density(
    resolution: float, land_fraction: float | None
) -> npt.NDArray[np.float64]:
    """Density of the training points on the cells of a global grid.

    Points are area-uniform on land and on water separately, with a share
    ``land_fraction`` on land (`sample_points`); the density of a cell is its
    area times the share of its class over the area of that class.

    Args:
        resolution: Grid cell size in degrees (`global_grid`).
        land_fraction: Share of points on land; None for area-uniform.

    Returns:
        ``(rows, cols)`` weights summing to 1.
    """
    lon, lat = global_grid(resolution)
    area = np.cos(np.radians(lat))
    if land_fraction is not None:
        land = read_land_mask().is_land(lon, lat)
        land_area, water_area = area[land].sum(), area[~land].sum()
        share = np.where(
            land,
            land_fraction / max(land_area, 1e-12),
            (1 - land_fraction) / max(water_area, 1e-12),
        )
        area = area * share
    density: npt.NDArray[np.float64] = area / area.sum()
    return density


def new_run_dir(runs_dir: str | os.PathLike[str], prefix: str = 'demo') -> pathlib.Path:
    """Create a new, empty run folder named after the current time.

    Args:
        runs_dir: Parent folder (created if needed).
        prefix: Start of the folder name.

    Returns:
        ``<runs_dir>/<prefix>-YYYYmmdd-HHMMSS``, with ``-2``, ``-3``, ...
        appended when that exists already.
    """
    parent = pathlib.Path(runs_dir)
    parent.mkdir(parents=True, exist_ok=True)
    stem = f'{prefix}-{time.strftime("%Y%m%d-%H%M%S")}'
    for attempt in range(1, 1000):
        candidate = parent / (stem if attempt == 1 else f'{stem}-{attempt}')
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f'could not create a new run folder under {parent}')


def _settings(data: DemoData) -> dict[str, Any]:
    return settings_of(
        data.n, data.patch_size, data.seed, data.land_fraction, data.relief
    )


def _read_config(config: pathlib.Path) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return document if isinstance(document, dict) else {}


def _config_data_root(config: pathlib.Path) -> str | None:
    try:
        root = _read_config(config)['data']['init_args']['root']
    except (KeyError, TypeError):
        return None
    return str(root) if root is not None else None


def _root_arguments(config: pathlib.Path, root: str) -> list[str]:
    """LightningCLI options that point the config's data (and patches) at root."""
    arguments = [f'--data.init_args.root={root}']
    try:
        init_args = _read_config(config)['model']['init_args']
        # The option is set under the name the config uses: model_args, or
        # backbone_args (its deprecated name) in an older config.
        key = 'backbone_args' if 'backbone_args' in init_args else 'model_args'
        model_args = init_args[key]
    except (KeyError, TypeError):
        return arguments
    if isinstance(model_args, dict) and 'patches_from' in model_args:
        # MOSAIKS draws its filters from the training images.
        model_args = {**model_args, 'patches_from': root}
        arguments.append(f'--model.init_args.{key}={json.dumps(model_args)}')
    return arguments


def features_dir(root: str | os.PathLike[str]) -> pathlib.Path:
    """Where the demo caches the features of the data set in ``root``.

    Args:
        root: The data set folder.

    Returns:
        The sibling folder ``<root>-features``.
    """
    folder = pathlib.Path(root)
    return folder.with_name(f'{folder.name}-features')


def cache_demo_features(
    config: str | os.PathLike[str],
    root: str,
    views: int,
    lightning_args: Sequence[str] = (),
) -> tuple[pathlib.Path, bool]:
    """Cache the frozen backbone's features of the demo data (`features_dir`).

    The same as ``satclip-tg cache-features --config CONFIG --output
    <root>-features --views V``; a cache made with these settings is reused,
    one made with others is replaced (it belongs to the demo).

    Args:
        config: The demo's live config.
        root: The data set folder.
        views: Views per patch.
        lightning_args: Extra LightningCLI options (model and data ones apply).

    Returns:
        The cache folder, and whether features were computed.
    """
    from ..cli import lightning_cli
    from ..features.writer import cache_features

    config_path = pathlib.Path(config)
    cli = lightning_cli(
        [
            f'--config={config_path}',
            *_root_arguments(config_path, root),
            '--trainer.logger=false',
            '--trainer.callbacks=[]',
            *lightning_args,
        ],
        run=False,
    )
    output = features_dir(root)
    report = cache_features(
        cli.model,
        cli.datamodule,
        output,
        views=views,
        overwrite=True,
        trainer_kwargs={
            'accelerator': 'cpu',
            'devices': 1,
            'precision': '32-true',
            'enable_progress_bar': False,
        },
        say=lambda _: None,
    )
    return output, report.shards_before < report.manifest.shards


def pretrain_on_cache(
    config: str | os.PathLike[str],
    cached_config: str | os.PathLike[str],
    root: str,
    cache: pathlib.Path,
    run_dir: pathlib.Path,
    lightning_args: Sequence[str] = (),
) -> pathlib.Path:
    """Train the demo on its cached features; the checkpoint goes to run_dir.

    ``satclip-tg fit --config CONFIG --config CACHED_CONFIG
    --data.init_args.features CACHE`` in this process, logging to a CSV file
    in ``run_dir``.

    Args:
        config: The demo's live config (model and trainer).
        cached_config: The overlay that swaps in `CachedFeatureDataModule`.
        root: The data set folder (for the backbone's ``patches_from``).
        cache: The feature cache.
        run_dir: The run folder.
        lightning_args: Extra LightningCLI options.

    Returns:
        The checkpoint path.
    """
    from ..cli import run_lightning

    config_path = pathlib.Path(config)
    callback = {
        'class_path': f'{DemoOutputs.__module__}.DemoOutputs',
        'init_args': {'run_dir': str(run_dir)},
    }
    logger = {
        'class_path': 'lightning.pytorch.loggers.CSVLogger',
        'init_args': {'save_dir': str(run_dir), 'name': '', 'version': ''},
    }
    root_arguments = _root_arguments(config_path, root)[1:]  # the model's only
    run_lightning(
        [
            'fit',
            f'--config={config_path}',
            f'--config={cached_config}',
            f'--data.init_args.features={cache}',
            *root_arguments,
            f'--trainer.default_root_dir={run_dir}',
            '--trainer.enable_checkpointing=false',
            f'--trainer.logger={json.dumps(logger)}',
            f'--trainer.callbacks+={json.dumps(callback)}',
            *lightning_args,
        ]
    )
    return run_dir / CHECKPOINT_NAME


#: Tasks of the quick check: light data (installed by the ``benchmark``
#: extra), quick to probe, and each about something else: climate, terrain,
#: what covers the land.
QUICK_CHECK_TASKS = ('air_temperature', 'elevation', 'land_sea')
#: Probe of the quick check: the one the full benchmark's targets use.
QUICK_CHECK_PROBE = 'mlp'


@dataclass(frozen=True)
class QuickCheck:
    """The outcome of `quick_check`.

    Attributes:
        lines: Lines for the summary (a table and the verdict).
        verdict: The one-line verdict.
        seconds: Wall time.
    """

    lines: list[str]
    verdict: str
    seconds: float


def quick_check(
    checkpoint: pathlib.Path,
    tasks: Sequence[str] = QUICK_CHECK_TASKS,
    *,
    num_points: int = 1000,
    seeds: int = 3,
    cache_dir: str | pathlib.Path | None = None,
) -> QuickCheck:
    """Does the demo's pretraining add knowledge? A fast benchmark answer.

    The pretrained encoder and the same architecture at random initialisation
    (averaged over ``seeds`` seeds) on a few benchmark tasks, with the MLP
    probe under spatial-block cross-validation (`run_benchmark`), as the full
    benchmark scores them, on fewer points. The full answer is
    ``satclip-tg benchmark --encoders demo=CHECKPOINT``.

    Args:
        checkpoint: The demo checkpoint.
        tasks: Benchmark tasks.
        num_points: Labelled points per task.
        seeds: Seeds of the random initialisation.
        cache_dir: The benchmark's cache folder (default: its default).

    Returns:
        The lines for the summary; tasks whose data is missing are named
        with the install hint, and the verdict says when none could run.
    """
    from ..evaluation.comparison import compare_with_random_init, count_wins
    from ..evaluation.runner import run_benchmark

    start = time.perf_counter()
    result = run_benchmark(
        [f'demo={checkpoint}'],
        list(tasks),
        probes=(QUICK_CHECK_PROBE,),
        num_points=num_points,
        baselines=False,
        cache_dir=cache_dir,
        progress=False,
        random_init=True,
        random_init_seeds=seeds,
    )
    lines = []
    missing = [
        f'{name.removeprefix("task ")}: {reason}'
        for name, reason in result.unavailable.items()
    ]
    if not result.rows:
        verdict = (
            'quick check skipped: no benchmark data here (pip install '
            "'satclip-tg[benchmark]'); " + '; '.join(missing)
        )
        return QuickCheck([verdict], verdict, time.perf_counter() - start)
    verdicts = compare_with_random_init(result.rows, 'demo')
    for verdict_row in verdicts:
        lines.append(
            f'  {verdict_row.task:16} {verdict_row.metric:8} pretrained '
            f'{verdict_row.pretrained_mean:6.3f}  random init '
            f'{verdict_row.random_init_mean:6.3f}  '
            f'({"+" if verdict_row.difference >= 0 else ""}'
            f'{verdict_row.difference:.3f})'
        )
    wins, total = count_wins(verdicts)[QUICK_CHECK_PROBE]
    verdict = (
        f'pretraining {"adds" if 2 * wins > total else "does not add"} '
        f'knowledge here: the demo encoder beats its random initialisation on '
        f'{wins} of {total} quick-check tasks'
    )
    lines += [f'  tasks without data: {m}' for m in missing]
    return QuickCheck(lines, verdict, time.perf_counter() - start)


def _format_km(value: float | None) -> str:
    return 'n/a' if value is None or math.isnan(value) else f'{value:,.0f} km'


def _format_share(value: float | None) -> str:
    return 'n/a' if value is None or math.isnan(value) else f'{100 * value:.1f}%'


def write_summary(
    path: pathlib.Path,
    record: Mapping[str, Any],
    data: DemoData,
    data_root: str,
    timings: Mapping[str, float],
    explained: Sequence[float],
    map_resolution: float = 0.5,
    check: QuickCheck | None = None,
) -> str:
    """Write the human-readable summary of a demo run.

    Args:
        path: Output text file (written atomically).
        record: What `DemoOutputs` saved (metrics, epochs, sizes).
        data: The data settings.
        data_root: Where the data set lives.
        timings: Seconds per step.
        explained: Variance shares of the map's three components.
        map_resolution: Grid cell size of the map in degrees.
        check: The quick check, if it ran.

    Returns:
        The text written.
    """
    metrics: Mapping[str, float] = record.get('metrics', {})

    def get(name: str) -> float | None:
        return metrics.get(name)

    median, random = get('val_median_km'), get('val_random_median_km')
    ratio = (
        f' ({median / random:.2f} of the random guess)'
        if median is not None and random
        else ''
    )
    if data.land_fraction is None:
        land = 'the whole globe'
    elif data.land_fraction == 1:
        land = 'land only'
    else:
        land = f'{100 * data.land_fraction:.0f}% land, the rest water'
    lines = [
        'satclip-tg demo: SatCLIP pretraining on NASA Blue Marble patches',
        '',
        f'data:       {data.n} patches of {data.patch_size} x {data.patch_size} '
        f'pixels (1/15 degree each; '
        f'{"true colour + shaded relief" if data.relief else "true colour"}), '
        f'area-uniform points on {land}, seed {data.seed}; {data_root}',
        f'training:   {record.get("epochs")} epochs, {record.get("global_step")} '
        f'steps, batch {record.get("batch_size")}, on cached MOSAIKS features'
        + (' (fast_dev_run)' if record.get('fast_dev_run') else ''),
        '',
        f'validation ({record.get("val_size")} held-out locations; retrieval among '
        f'the locations of each batch of {record.get("batch_size")}):',
        f'  median retrieval error:   {_format_km(median)}{ratio}',
        f'  random-guess median:      {_format_km(random)}',
        f'  image -> location top-1:  {_format_share(get("val_img2loc_top1"))}, '
        f'top-5: {_format_share(get("val_img2loc_top5"))}',
        f'  location -> image top-1:  {_format_share(get("val_loc2img_top1"))}, '
        f'top-5: {_format_share(get("val_loc2img_top5"))}',
        '  loss:                     '
        + ('n/a' if get('val_loss') is None else f'{get("val_loss"):.3f}'),
        '',
    ]
    if check is not None:
        lines += [
            f'quick check ({QUICK_CHECK_PROBE.upper()} probe, 1000 points per task, '
            'spatial-block CV; the same architecture '
            'at random initialisation averaged over 3 seeds; full benchmark: '
            'satclip-tg benchmark --encoders demo=' + CHECKPOINT_NAME + '):',
            *check.lines,
            f'  verdict: {check.verdict}',
            '',
        ]
    lines += [
        'embedding map: first 3 principal components of the location embeddings '
        f'on a {map_resolution:g}-degree grid, weighted by the density of the '
        'training points, as RGB (variance explained '
        + ', '.join(f'{100 * share:.0f}%' for share in explained)
        + ')',
        '',
        'time (s):   '
        + ', '.join(f'{name} {seconds:.0f}' for name, seconds in timings.items()),
        '',
        f'files:      {CHECKPOINT_NAME} (Lightning checkpoint, weights only; '
        f'location encoder recipe under checkpoint["{CHECKPOINT_KEY}"]), '
        f'{MAP_NAME}, {METRICS_NAME}'
        + ''.join(
            f', {name}'
            for name in (MODEL_CARD_NAME, *_LOG_FILES)
            if (path.parent / name).exists()
        ),
        '',
    ]
    text = '\n'.join(lines)
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text(text)
    return text


def run_demo(
    *,
    config: str | os.PathLike[str] = 'configs/demo.yaml',
    cached_config: str | os.PathLike[str] = 'configs/demo_cached.yaml',
    views: int = DEMO_VIEWS,
    runs_dir: str | os.PathLike[str] = 'runs',
    data_root: str | None = None,
    data: DemoData = DEMO_DATA,
    lightning_args: Sequence[str] = (),
    map_resolution: float = 0.5,
    threads: int | None = None,
    check: bool = True,
    say: Callable[[str], None] = print,
) -> pathlib.Path:
    """Run the whole demo and return its run folder.

    Args:
        config: LightningCLI config of the pretraining run (live data; its
            frozen backbone's features are cached).
        cached_config: Overlay that trains on the cached features.
        views: Views per patch in the feature cache.
        runs_dir: Parent of the new run folder.
        data_root: Where to build and read the data set; by default the
            config's ``data.init_args.root``.
        data: Settings of the data set.
        lightning_args: Extra LightningCLI arguments, e.g.
            ``['--trainer.max_epochs=1']``.
        map_resolution: Grid cell size of the embedding map in degrees.
        threads: PyTorch CPU threads while the demo runs; by default the
            available cores (training on the cached features needs no
            data-loading worker). On a busy machine, more threads than free
            cores slow training down several times (OpenMP threads wait for
            each other).
        check: Run the quick check against the random initialisation.
        say: Prints a progress message.

    Returns:
        The run folder.

    Raises:
        FileNotFoundError: If a config does not exist.
    """
    config_path = pathlib.Path(config)
    for path in (config_path, pathlib.Path(cached_config)):
        if not path.is_file():
            raise FileNotFoundError(f'config {path} not found')
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or _available_cores())
    try:
        return _run_demo(
            config_path,
            pathlib.Path(cached_config),
            views,
            runs_dir,
            data_root,
            data,
            lightning_args,
            map_resolution,
            check,
            say,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _run_demo(
    config_path: pathlib.Path,
    cached_config: pathlib.Path,
    views: int,
    runs_dir: str | os.PathLike[str],
    data_root: str | None,
    data: DemoData,
    lightning_args: Sequence[str],
    map_resolution: float,
    check: bool,
    say: Callable[[str], None],
) -> pathlib.Path:
    root = data_root or _config_data_root(config_path) or 'data/bluemarble-demo'
    timings: dict[str, float] = {}
    start = time.perf_counter()
    steps = 6 if check else 5

    say(
        f'step 1/{steps}: Blue Marble data set in {root} ({data.n} patches of '
        f'{data.patch_size} x {data.patch_size} pixels)'
    )
    manifest = read_manifest(root)
    # A data set we built with other settings is rebuilt; other files are kept.
    replace = manifest is not None
    if manifest is not None and manifest.get('settings') != _settings(data):
        say(f'  {root} holds a data set with other settings: rebuilding it')
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last[0] > 5:
            last[0] = now
            say(f'  {done}/{total} patches written')

    report = build_bluemarble(
        root,
        data.n,
        patch_size=data.patch_size,
        seed=data.seed,
        land_fraction=data.land_fraction,
        relief=data.relief,
        overwrite=replace,
        progress=progress,
    )
    timings['data'] = report.seconds
    say(
        f'  built in {report.seconds:.0f} s'
        if report.built
        else '  already built with these settings: reusing it'
    )

    say(
        f'step 2/{steps}: frozen MOSAIKS features of every patch, {views} views '
        f'(satclip-tg cache-features --config {config_path} --output '
        f'{features_dir(root)} --views {views})'
    )
    features_start = time.perf_counter()
    cache, computed = cache_demo_features(config_path, root, views, lightning_args)
    timings['features'] = time.perf_counter() - features_start
    say(
        f'  cached in {timings["features"]:.0f} s'
        if computed
        else '  already cached with these settings: reusing them'
    )

    run_dir = new_run_dir(runs_dir)
    say(
        f'step 3/{steps}: pretraining on the cached features (satclip-tg fit '
        f'--config {config_path} --config {cached_config}; PyTorch on '
        f'{torch.get_num_threads()} CPU thread(s)) into {run_dir}'
    )
    fit_start = time.perf_counter()
    checkpoint = pretrain_on_cache(
        config_path, cached_config, root, cache, run_dir, lightning_args
    )
    timings['training'] = time.perf_counter() - fit_start
    record = json.loads((run_dir / METRICS_NAME).read_text())
    say(f'  trained in {timings["training"]:.0f} s; checkpoint {checkpoint}')

    say(f'step 4/{steps}: embedding map -> {run_dir / MAP_NAME}')
    map_start = time.perf_counter()
    encoder = load_location_encoder(checkpoint)
    explained = write_embedding_map(
        encoder,
        run_dir / MAP_NAME,
        resolution=map_resolution,
        land_mask=read_land_mask(10.0, 'l'),
        weights=training_density(map_resolution, data.land_fraction),
    )
    timings['map'] = time.perf_counter() - map_start
    info = get_pretrained_info(encoder)
    if info is not None and info.model_card is not None:
        with atomic_output(run_dir / MODEL_CARD_NAME, overwrite=True) as temporary:
            temporary.write_text(
                render_model_card(info.model_card, 'Model card: satclip-tg demo')
            )

    outcome = None
    if check:
        say(
            f'step 5/{steps}: quick check against the random initialisation '
            f'({", ".join(QUICK_CHECK_TASKS)})'
        )
        outcome = quick_check(checkpoint)
        timings['check'] = outcome.seconds
        say(f'  {outcome.verdict}')
    timings['total'] = time.perf_counter() - start

    say(f'step {steps}/{steps}: summary -> {run_dir / SUMMARY_NAME}')
    text = write_summary(
        run_dir / SUMMARY_NAME,
        record,
        data,
        root,
        timings,
        explained.tolist(),
        map_resolution,
        outcome,
    )
    say('\n' + text)
    say(f'done: all outputs are in {run_dir}')
    return run_dir
