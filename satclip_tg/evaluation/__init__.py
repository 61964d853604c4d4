"""Downstream evaluation of location encoders on real data (``satclip-tg benchmark``).

The pieces, usable on their own from a notebook:

* `evaluate`: embeddings + labels + split -> per-fold metrics;
* `make_splits`: random, spatial-block and leave-one-continent-out folds
  (from `satclip_tg.datasets.splits`);
* `fit_probe`: linear and MLP probes with inner-CV penalty selection;
* `load_points`: labelled points of a registered downstream data set, cached
  (from `satclip_tg.datasets.downstream`);
* `resolve_encoder`: baselines, registered encodings and checkpoints;
* `random_init_encoder`: a checkpoint's architecture with random weights;
* `compare_with_random_init`: does pretraining beat that random init?
* `run_benchmark`: all of it over encoders x downstream data sets x probes,
  with a report.

Nothing wrong passes silently: see `Evaluation.assess` (failed and flagged
results), `low_n_reason` (folds too small) and `check_point_labels` (bad
points).
"""

from ..datasets.downstream import (
    BUILTIN_DOWNSTREAM_DATASETS,
    BUILTIN_TASKS,
    SOURCES,
    DataSource,
    DataUnavailableError,
    DownstreamDataset,
    DownstreamTask,
    PackagedDownstreamDataset,
    PackagedTask,
    PointLabels,
    check_point_labels,
    default_cache_dir,
    get_downstream_dataset,
    get_task,
    load_points,
)
from ..datasets.splits import SPLITS, Fold, make_splits
from .comparison import (
    MAIN_METRICS,
    RandomInitVerdict,
    compare_with_random_init,
    count_wins,
    random_init_comparisons,
    undecided_summary,
    wins_summary,
)
from .encoders import (
    BASELINES,
    RANDOM_INIT_SUFFIX,
    BenchmarkEncoder,
    GeoCLIPLocationEncoder,
    random_init_encoder,
    random_init_name,
    resolve_encoder,
)
from .evaluation import (
    METRICS,
    MIN_TEST_POINTS,
    MIN_TRAIN_POINTS,
    Evaluation,
    FoldResult,
    evaluate,
    low_n_reason,
)
from .probes import PROBES, ProbeConfig, ProbeDivergedError, ProbeFit, fit_probe
from .runner import DEFAULT_NUM_POINTS, BenchmarkResult, run_benchmark

__all__ = [
    'BASELINES',
    'BUILTIN_DOWNSTREAM_DATASETS',
    'BUILTIN_TASKS',
    'DEFAULT_NUM_POINTS',
    'MAIN_METRICS',
    'METRICS',
    'MIN_TEST_POINTS',
    'MIN_TRAIN_POINTS',
    'PROBES',
    'RANDOM_INIT_SUFFIX',
    'SOURCES',
    'SPLITS',
    'BenchmarkEncoder',
    'BenchmarkResult',
    'DataSource',
    'DataUnavailableError',
    'DownstreamDataset',
    'DownstreamTask',
    'Evaluation',
    'Fold',
    'FoldResult',
    'GeoCLIPLocationEncoder',
    'PackagedDownstreamDataset',
    'PackagedTask',
    'PointLabels',
    'ProbeConfig',
    'ProbeDivergedError',
    'ProbeFit',
    'RandomInitVerdict',
    'check_point_labels',
    'compare_with_random_init',
    'count_wins',
    'default_cache_dir',
    'evaluate',
    'fit_probe',
    'get_downstream_dataset',
    'get_task',
    'load_points',
    'low_n_reason',
    'make_splits',
    'random_init_comparisons',
    'random_init_encoder',
    'random_init_name',
    'resolve_encoder',
    'run_benchmark',
    'undecided_summary',
    'wins_summary',
]
