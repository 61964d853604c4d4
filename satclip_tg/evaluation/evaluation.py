r"""One evaluation: embeddings + labels + split -> metrics (usable in notebooks).

Example::

    from satclip_tg.evaluation import evaluate

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

Scores that cannot be trusted are never silent: `Evaluation.assess` says, per
metric, whether the result is ``'ok'``, ``'flagged'`` (a usable mean with a
caveat, such as folds too small by `low_n_reason` or folds where the metric is
undefined) or ``'failed'`` (no usable mean: features that are not finite, a
probe that diverged, a metric undefined on every fold).
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..datasets.splits import (
    Fold,
    group_kfold,
    make_splits,
    random_kfold,
    spatial_block_kfold,
)
from .probes import ProbeConfig, ProbeDivergedError, fit_probe

__all__ = [
    'METRICS',
    'MIN_TEST_POINTS',
    'MIN_TRAIN_POINTS',
    'Evaluation',
    'FoldResult',
    'accuracy',
    'evaluate',
    'inner_folds',
    'low_n_reason',
    'macro_f1',
    'mse',
    'r2_score',
]

#: The metrics of each task kind; for all of them higher is better except MSE.
METRICS: dict[str, tuple[str, ...]] = {
    'regression': ('r2', 'mse'),
    'classification': ('accuracy', 'macro_f1'),
}

#: A test fold with fewer points is flagged low-n: with 9 points an accuracy
#: moves in steps of 0.11 and an R² is dominated by one point.
MIN_TEST_POINTS = 10

#: A fold with fewer training points is flagged low-n: the probe and its inner
#: cross-validation (3 folds by default) have too little to fit.
MIN_TRAIN_POINTS = 20

#: Why a metric can be undefined on a fold (``nan``), for the notes.
_UNDEFINED = {'r2': 'constant test targets'}


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


def low_n_reason(
    n_train: int, n_test: int, train_classes: int | None = None
) -> str | None:
    """Why a fold is too small for a meaningful score, or ``None``.

    The rule: fewer than `MIN_TEST_POINTS` test points, fewer than
    `MIN_TRAIN_POINTS` training points, or (classification) training rows of
    a single class, which leave the probe nothing to tell apart.

    Args:
        n_train: Training points of the fold.
        n_test: Test points of the fold.
        train_classes: Distinct classes among the training points
            (classification), else ``None``.

    Returns:
        The reason, or ``None`` when the fold is large enough.
    """
    reasons = []
    if n_test < MIN_TEST_POINTS:
        reasons.append(f'{n_test} test points (fewer than {MIN_TEST_POINTS})')
    if n_train < MIN_TRAIN_POINTS:
        reasons.append(f'{n_train} training points (fewer than {MIN_TRAIN_POINTS})')
    if train_classes is not None and train_classes < 2:
        reasons.append('training points of a single class')
    return ', '.join(reasons) or None


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
        failed: Folds whose fit failed (the probe diverged), with the reason;
            they are not in ``folds``.
        low_n: Evaluated folds too small for a meaningful score (see
            `low_n_reason`), with the reason.
        invalid: Why nothing was evaluated (e.g. features that are not
            finite), else ``''``.
    """

    kind: str
    probe: str
    split: str
    folds: list[FoldResult]
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    low_n: dict[str, str] = field(default_factory=dict)
    invalid: str = ''

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

    def assess(self, metric: str) -> tuple[str, str]:
        """Whether one metric's `summary` can be trusted, and why not.

        Failed (no usable mean): the evaluation is ``invalid``, a fold's fit
        failed (a mean over the other folds would not be comparable with
        other encoders'), no fold was evaluated, or the metric is undefined
        on every fold. Flagged (a usable mean with a caveat): some folds are
        low-n, skipped, or have the metric undefined (the mean leaves them
        out).

        Args:
            metric: A metric of `metric_names`.

        Returns:
            ``(status, note)``: ``('ok', '')``, ``('flagged', note)`` or
            ``('failed', reason)``; notes of several causes are joined by
            ``'; '`` and low-n notes start with ``'low-n'``.
        """
        total = len(self.folds) + len(self.skipped) + len(self.failed)
        if self.invalid:
            return 'failed', self.invalid
        if self.failed:
            return 'failed', '; '.join(
                f'{name}: {reason}' for name, reason in self.failed.items()
            )
        if not self.folds:
            if self.skipped:
                reasons = ', '.join(dict.fromkeys(self.skipped.values()))
                return 'failed', f'every fold skipped ({reasons})'
            return 'failed', 'no fold to evaluate'
        values = [fold.metrics[metric] for fold in self.folds]
        undefined = sum(not np.isfinite(value) for value in values)
        why = _UNDEFINED.get(metric, 'not finite')
        if undefined == len(values):
            return 'failed', f'{metric} undefined on every fold ({why})'
        notes = []
        if self.low_n:
            details = '; '.join(
                f'{name}: {reason}' for name, reason in self.low_n.items()
            )
            notes.append(
                f'low-n: {len(self.low_n)} of {total} folds too small ({details})'
            )
        if self.skipped:
            reasons = ', '.join(dict.fromkeys(self.skipped.values()))
            notes.append(f'{len(self.skipped)} of {total} folds skipped ({reasons})')
        if undefined:
            notes.append(
                f'{metric} undefined on {undefined} of {len(values)} folds '
                f'({why}), left out of the mean'
            )
        return ('flagged', '; '.join(notes)) if notes else ('ok', '')


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
        The per-fold metrics (see `Evaluation.assess` for whether to trust
        them). A classification fold none of whose test labels occurs in its
        training rows (e.g. holding out the continent when the label *is* the
        continent) is skipped and listed in ``skipped``; a fold whose probe
        diverged is listed in ``failed``; evaluated folds that are too small
        (`low_n_reason`) in ``low_n``. Embeddings that hold NaN or infinity
        are not evaluated at all: ``invalid`` says where they are.

    Raises:
        ValueError: If shapes disagree, the split cannot be built, or the
            labels are not finite (or, for classification, not integers).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    y_raw = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y_raw):
        raise ValueError(
            f'embeddings must be (N, d) with N = len(labels) = {len(y_raw)}, '
            f'got {x.shape}'
        )
    _check_labels(y_raw, kind)
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
    invalid = _non_finite_features(x, points)
    if invalid:
        # Fitting on NaN would give NaN scores at best and, for a classifier,
        # the argmax of NaN logits (a finite, meaningless accuracy) at worst.
        return Evaluation(kind, probe, split, [], invalid=invalid)
    if kind == 'regression':
        y = y_raw.astype(np.float64)
        scale = float(y.std()) or 1.0
        y = (y - y.mean()) / scale
    else:
        y = y_raw.astype(np.int64)
    results: list[FoldResult] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    low_n: dict[str, str] = {}
    for fold in folds:
        if len(fold.test) == 0 or len(fold.train) == 0:
            skipped[fold.name] = 'empty fold'
            continue
        if kind == 'classification' and not np.isin(y[fold.test], y[fold.train]).any():
            skipped[fold.name] = 'no test label occurs in the training rows'
            continue
        classes = len(np.unique(y[fold.train])) if kind == 'classification' else None
        reason = low_n_reason(len(fold.train), len(fold.test), classes)
        if reason is not None:
            low_n[fold.name] = reason
        start = time.perf_counter()
        inner_split = inner_folds(
            split,
            None if points is None else points[fold.train],
            None if group_array is None else group_array[fold.train],
            inner,
            block_size,
            seed,
        )
        try:
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
        except ProbeDivergedError as error:
            failed[fold.name] = str(error)
            continue
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
    return Evaluation(kind, probe, split, results, skipped, failed, low_n)


def _check_labels(labels: NDArray[np.generic], kind: str) -> None:
    if kind == 'regression' or labels.dtype.kind == 'f':
        values = labels.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(
                f'{len(bad)} labels are not finite (NaN or infinity), the first '
                f'at index {bad[0]} (counting from 0)'
            )
        if kind == 'classification':
            bad = np.flatnonzero(values != np.round(values))
            if len(bad):
                raise ValueError(
                    f'{len(bad)} class labels are not integers, the first at '
                    f'index {bad[0]} (counting from 0): {values[bad[0]]}'
                )


def _non_finite_features(
    x: NDArray[np.float64], coords: NDArray[np.float64] | None
) -> str:
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad) == 0:
        return ''
    where = f'index {bad[0]}'
    if coords is not None:
        lon, lat = coords[bad[0]]
        where += f' (lon {lon:g}, lat {lat:g})'
    return (
        f'the encoder returned NaN or infinite features for {len(bad)} of '
        f'{len(x)} points, the first at {where}'
    )


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
