r"""One evaluation: embeddings + labels + split -> metrics (usable in notebooks).

Example::

    from satclip_tg.benchmark import evaluate

    result = evaluate(embeddings, temperature, 'regression', coords=coords,
                      split='spatial-block', probe='linear')
    result.summary()  # {'r2': (mean, std), 'mse': (mean, std)}

Metrics, computed on each test fold and summarised by their mean and standard
deviation over folds:

* regression: $R^2 = 1 - \sum (y - \hat y)^2 / \sum (y - \bar y)^2$ with
  $\bar y$ the test fold's mean (negative when worse than predicting that
  mean), and the MSE of the target standardized over the whole sample (so an
  MSE of 1 is the variance of the target, as in the paper's normalised MSE);
* classification: accuracy and macro-F1 (the unweighted mean of the F1 scores
  of the classes present in the fold's truth or predictions).
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .probes import ProbeConfig, fit_probe
from .splits import Fold, group_kfold, make_splits, random_kfold, spatial_block_kfold

__all__ = [
    'METRICS',
    'Evaluation',
    'FoldResult',
    'accuracy',
    'evaluate',
    'inner_folds',
    'macro_f1',
    'mse',
    'r2_score',
]

#: The metrics of each task kind; for all of them higher is better except MSE.
METRICS: dict[str, tuple[str, ...]] = {
    'regression': ('r2', 'mse'),
    'classification': ('accuracy', 'macro_f1'),
}


def r2_score(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Coefficient of determination.

    Args:
        truth: True values.
        prediction: Predicted values.

    Returns:
        $R^2$; ``nan`` when the truth is constant.
    """
    y, p = np.asarray(truth, dtype=np.float64), np.asarray(prediction, np.float64)
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0.0:
        return float('nan')
    return 1.0 - float(np.sum((y - p) ** 2)) / total


def mse(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Mean squared error.

    Args:
        truth: True values.
        prediction: Predicted values.

    Returns:
        The mean of the squared differences.
    """
    y, p = np.asarray(truth, dtype=np.float64), np.asarray(prediction, np.float64)
    return float(np.mean((y - p) ** 2))


def accuracy(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Fraction of correct labels.

    Args:
        truth: True labels.
        prediction: Predicted labels.

    Returns:
        The accuracy.
    """
    return float(np.mean(np.asarray(truth) == np.asarray(prediction)))


def macro_f1(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Unweighted mean F1 over the labels in the truth or the predictions.

    Args:
        truth: True labels.
        prediction: Predicted labels.

    Returns:
        The macro-F1 score.
    """
    y, p = np.asarray(truth), np.asarray(prediction)
    scores = []
    for label in np.union1d(y, p):
        true_positive = float(np.sum((y == label) & (p == label)))
        denominator = float(np.sum(y == label) + np.sum(p == label))
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores)) if scores else float('nan')


@dataclass(frozen=True)
class FoldResult:
    """Metrics of one outer fold.

    Attributes:
        fold: The fold's name.
        n_train: Training rows.
        n_test: Test rows.
        metrics: Metric name to value.
        penalty: The penalty the inner CV chose.
        seconds: Wall time of the fit.
    """

    fold: str
    n_train: int
    n_test: int
    metrics: dict[str, float]
    penalty: float
    seconds: float


@dataclass(frozen=True)
class Evaluation:
    """All folds of one evaluation.

    Attributes:
        kind: ``'regression'`` or ``'classification'``.
        probe: The probe name.
        split: The split name.
        folds: The evaluated folds.
        skipped: Folds left out, with the reason.
    """

    kind: str
    probe: str
    split: str
    folds: list[FoldResult]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics of this task kind."""
        return METRICS[self.kind]

    def summary(self) -> dict[str, tuple[float, float]]:
        """Mean and (population) standard deviation of each metric over folds.

        Returns:
            Metric name to ``(mean, std)``; ``nan`` when no fold was evaluated.
        """
        out = {}
        for name in self.metric_names:
            values = np.array([fold.metrics[name] for fold in self.folds], float)
            values = values[np.isfinite(values)]
            if len(values) == 0:
                out[name] = (float('nan'), float('nan'))
            else:
                out[name] = (float(values.mean()), float(values.std()))
        return out

    @property
    def seconds(self) -> float:
        """Total fitting time."""
        return float(sum(fold.seconds for fold in self.folds))


def inner_folds(
    split: str,
    coords: NDArray[np.float64] | None,
    groups: NDArray[np.str_] | None,
    k: int,
    block_size: float,
    seed: int,
) -> list[Fold]:
    """Folds of the inner cross-validation on the training rows.

    The inner split follows the outer one, so that penalties are chosen for
    the kind of generalisation being measured: random K-fold inside random,
    spatial blocks inside spatial blocks, and K-fold over the remaining
    continents inside leave-one-continent-out. When that is impossible (too
    few blocks or continents, or no coordinates) it falls back to random
    K-fold.

    Args:
        split: The outer split name.
        coords: ``(n, 2)`` training coordinates, if known.
        groups: ``(n,)`` training continents, if known.
        k: Number of inner folds.
        block_size: Block size in degrees.
        seed: Seed.

    Returns:
        The inner folds (empty when ``k < 2`` or too few rows).
    """
    n = len(coords) if coords is not None else len(groups) if groups is not None else 0
    if k < 2:
        return []
    try:
        if split == 'spatial-block' and coords is not None:
            return spatial_block_kfold(coords, k, block_size, seed)
        if split == 'leave-one-continent-out' and groups is not None:
            return group_kfold(groups, min(k, len(np.unique(groups))), seed)
    except ValueError:
        pass
    return random_kfold(n, k, seed) if n >= k else []


def _metrics(
    kind: str, truth: NDArray[np.float64], prediction: ArrayLike
) -> dict[str, float]:
    if kind == 'regression':
        return {'r2': r2_score(truth, prediction), 'mse': mse(truth, prediction)}
    return {
        'accuracy': accuracy(truth, prediction),
        'macro_f1': macro_f1(truth, prediction),
    }


def evaluate(
    embeddings: ArrayLike,
    labels: ArrayLike,
    kind: str,
    *,
    coords: ArrayLike | None = None,
    split: str = 'spatial-block',
    folds: Sequence[Fold] | None = None,
    groups: ArrayLike | None = None,
    probe: str = 'linear',
    num_folds: int = 5,
    block_size: float = 10.0,
    inner: int = 3,
    seed: int = 0,
    config: ProbeConfig | None = None,
) -> Evaluation:
    """Evaluate frozen embeddings with a probe under cross-validation.

    Args:
        embeddings: ``(N, d)`` features (NumPy array or tensor).
        labels: ``(N,)`` regression targets or class labels (integers).
        kind: ``'regression'`` or ``'classification'``.
        coords: ``(N, 2)`` (lon, lat) in degrees; needed by the spatial
            splits (outer and inner) unless ``folds`` is given.
        split: ``'random'``, ``'spatial-block'`` or
            ``'leave-one-continent-out'``; names the strategy of the inner
            CV too.
        folds: Ready-made outer folds; overrides ``split``'s construction.
        groups: ``(N,)`` continent of each point, for
            ``'leave-one-continent-out'``.
        probe: ``'linear'`` or ``'mlp'``.
        num_folds: Outer folds (random and spatial-block).
        block_size: Block size in degrees of the spatial blocks.
        inner: Inner folds for the penalty selection.
        seed: Seed of the splits and the MLP initialisation.
        config: Probe grids and settings.

    Returns:
        The per-fold metrics. A classification fold none of whose test labels
        occurs in its training rows (e.g. holding out the continent when the
        label *is* the continent) is skipped and listed in ``skipped``.

    Raises:
        ValueError: If shapes disagree or the split cannot be built.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    y_raw = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y_raw):
        raise ValueError(
            f'embeddings must be (N, d) with N = len(labels) = {len(y_raw)}, '
            f'got {x.shape}'
        )
    points = None if coords is None else np.asarray(coords, dtype=np.float64)
    group_array = None if groups is None else np.asarray(groups).astype(str)
    if folds is None:
        if points is None and split != 'random':
            raise ValueError(f'split {split!r} needs coords')
        folds = make_splits(
            split,
            points if points is not None else np.zeros((len(x), 2)),
            k=num_folds,
            block_size=block_size,
            seed=seed,
            groups=group_array,
        )
    if kind == 'regression':
        y = y_raw.astype(np.float64)
        scale = float(y.std()) or 1.0
        y = (y - y.mean()) / scale
    else:
        y = y_raw.astype(np.int64)
    results: list[FoldResult] = []
    skipped: dict[str, str] = {}
    for fold in folds:
        if len(fold.test) == 0 or len(fold.train) == 0:
            skipped[fold.name] = 'empty fold'
            continue
        if kind == 'classification' and not np.isin(y[fold.test], y[fold.train]).any():
            skipped[fold.name] = 'no test label occurs in the training rows'
            continue
        start = time.perf_counter()
        inner_split = inner_folds(
            split,
            None if points is None else points[fold.train],
            None if group_array is None else group_array[fold.train],
            inner,
            block_size,
            seed,
        )
        fit = fit_probe(
            probe,
            kind,
            x[fold.train],
            y[fold.train],
            x[fold.test],
            inner_split,
            config=config,
            seed=seed,
        )
        results.append(
            FoldResult(
                fold.name,
                len(fold.train),
                len(fold.test),
                _metrics(kind, y[fold.test], fit.predictions),
                fit.penalty,
                time.perf_counter() - start,
            )
        )
    return Evaluation(kind, probe, split, results, skipped)


def summary_table(evaluations: Mapping[str, Evaluation]) -> dict[str, dict[str, str]]:
    """Format several evaluations as ``mean ± std`` strings.

    Args:
        evaluations: Name to evaluation.

    Returns:
        Name to metric to formatted value.
    """
    return {
        name: {m: f'{mean:.3f} ± {std:.3f}' for m, (mean, std) in e.summary().items()}
        for name, e in evaluations.items()
    }
