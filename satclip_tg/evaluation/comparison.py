"""Does pretraining add knowledge? A pretrained encoder against its random init.

`run_benchmark` evaluates, beside every checkpoint ``NAME``, the same
architecture with random weights as ``NAME (random init)`` (see
`random_init_encoder`). The functions here compare the two on each task's
main metric, $R^2$ for regression and accuracy for classification::

    from satclip_tg.evaluation import compare_with_random_init, count_wins

    verdicts = compare_with_random_init(result.rows, 'demo')
    for probe, (wins, tasks) in count_wins(verdicts).items():
        print(f'pretrained beats random init on {wins} of {tasks} tasks ({probe})')

A verdict compares means over folds (the random init's averaged over its
seeds) and says nothing about significance: read the difference against the
standard deviations beside it. A task where either row failed (status
``'failed'``, see `ResultRow`) or is missing is ``'undecided'``: never a win,
left out of the counts and named by `undecided_summary`.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .encoders import random_init_name
from .results import ResultRow

__all__ = [
    'MAIN_METRICS',
    'RandomInitVerdict',
    'compare_with_random_init',
    'count_wins',
    'random_init_comparisons',
    'undecided_summary',
    'wins_summary',
]

#: The metric that decides each comparison, by task kind (higher is better).
MAIN_METRICS = {'regression': 'r2', 'classification': 'accuracy'}


@dataclass(frozen=True)
class RandomInitVerdict:
    """A pretrained encoder against its random init on one task and probe.

    Attributes:
        encoder: The pretrained encoder's name.
        random_init: Its random-init companion's name.
        task: Task name.
        kind: ``'regression'`` or ``'classification'``.
        probe: Probe name.
        metric: The main metric compared (see `MAIN_METRICS`).
        pretrained_mean: The pretrained encoder's mean over folds.
        pretrained_std: Its standard deviation over folds.
        random_init_mean: The companion's mean (over seeds of the fold means).
        random_init_std: The companion's mean over seeds of the fold stds.
        pretrained_failure: Why the pretrained encoder's row failed, else
            ``''``.
        random_init_failure: Why the companion's row failed, else ``''``.
    """

    encoder: str
    random_init: str
    task: str
    kind: str
    probe: str
    metric: str
    pretrained_mean: float
    pretrained_std: float
    random_init_mean: float
    random_init_std: float
    pretrained_failure: str = ''
    random_init_failure: str = ''

    @property
    def failure(self) -> str:
        """Why the verdict is undecided because a row failed, else ``''``."""
        failures = [
            f'{name} failed: {reason}'
            for name, reason in (
                (self.encoder, self.pretrained_failure),
                (self.random_init, self.random_init_failure),
            )
            if reason
        ]
        return '; '.join(failures)

    @property
    def difference(self) -> float:
        """Pretrained minus random init; positive when pretraining helps."""
        return self.pretrained_mean - self.random_init_mean

    @property
    def better(self) -> str:
        """``'pretrained'``, ``'random init'``, ``'tie'``, or ``'undecided'``.

        ``'undecided'`` when either row failed or either mean is missing or
        not finite.
        """
        if self.failure or not math.isfinite(self.difference):
            return 'undecided'
        if self.difference > 0:
            return 'pretrained'
        return 'random init' if self.difference < 0 else 'tie'

    @property
    def pretrained_wins(self) -> bool:
        """Whether the pretrained encoder's main metric is strictly higher."""
        return self.better == 'pretrained'


def compare_with_random_init(
    rows: Sequence[ResultRow], encoder: str, *, random_init: str | None = None
) -> list[RandomInitVerdict]:
    """Compare an encoder with its random init on every task and probe it ran.

    Args:
        rows: Benchmark results (`BenchmarkResult.rows` or ``results.csv``'s
            rows as `ResultRow`).
        encoder: The pretrained encoder's name.
        random_init: The companion's name (default: ``'ENCODER (random init)'``).

    Returns:
        One verdict per task and probe, in the order of ``rows``; a task the
        companion lacks has a ``nan`` random-init mean (verdict
        ``'undecided'``), and so has a task where either row failed.

    Raises:
        ValueError: If ``rows`` hold no main-metric result of ``encoder`` or
            none of its companion (e.g. a run with ``random_init=False``).
    """
    companion = random_init_name(encoder) if random_init is None else random_init
    mains = [row for row in rows if MAIN_METRICS.get(row.kind) == row.metric]
    baseline = {(row.task, row.probe): row for row in mains if row.encoder == companion}
    pretrained = [row for row in mains if row.encoder == encoder]
    if not pretrained:
        raise ValueError(f'no results of encoder {encoder!r} to compare')
    if not baseline:
        raise ValueError(
            f'no results of {companion!r}: the random-init companion runs by '
            f'default for checkpoints (not with random_init=False or '
            f'--no-random-init)'
        )
    verdicts = []
    for row in pretrained:
        match = baseline.get((row.task, row.probe))
        verdicts.append(
            RandomInitVerdict(
                encoder,
                companion,
                row.task,
                row.kind,
                row.probe,
                row.metric,
                row.mean,
                row.std,
                match.mean if match is not None else math.nan,
                match.std if match is not None else math.nan,
                _failure(row),
                _failure(match) if match is not None else '',
            )
        )
    return verdicts


def _failure(row: ResultRow) -> str:
    # getattr: rows of other shapes (older results.csv files) have no status.
    if getattr(row, 'status', 'ok') != 'failed':
        return ''
    return str(getattr(row, 'note', '')) or 'no value'


def undecided_summary(verdicts: Sequence[RandomInitVerdict]) -> str:
    """Which tasks `count_wins` leaves out because a row failed or is missing.

    Args:
        verdicts: Verdicts of one encoder (`compare_with_random_init`).

    Returns:
        E.g. ``'Undecided, so not counted: 1 task (linear probe: elevation)'``;
        ``''`` when every verdict is decided.
    """
    undecided: dict[str, list[str]] = {}
    for verdict in verdicts:
        if verdict.better == 'undecided':
            undecided.setdefault(verdict.probe, []).append(verdict.task)
    if not undecided:
        return ''
    parts = [
        f'{len(tasks)} task{"s" if len(tasks) > 1 else ""} ({probe} probe: '
        f'{", ".join(tasks)})'
        for probe, tasks in undecided.items()
    ]
    return f'Undecided, so not counted: {", ".join(parts)}'


def count_wins(verdicts: Sequence[RandomInitVerdict]) -> dict[str, tuple[int, int]]:
    """How often the pretrained encoder beats its random init, per probe.

    Args:
        verdicts: Verdicts of one encoder (`compare_with_random_init`).

    Returns:
        Probe name to ``(wins, tasks)``: the tasks where the pretrained
        encoder is strictly better, out of those where both have a value
        (``'undecided'`` verdicts do not count).
    """
    counts: dict[str, tuple[int, int]] = {}
    for verdict in verdicts:
        wins, tasks = counts.get(verdict.probe, (0, 0))
        if verdict.better != 'undecided':
            wins, tasks = wins + verdict.pretrained_wins, tasks + 1
        counts[verdict.probe] = (wins, tasks)
    return counts


def wins_summary(verdicts: Sequence[RandomInitVerdict]) -> str:
    """One sentence per encoder, e.g. "demo beats its random init on 3 of 8 tasks".

    Args:
        verdicts: Verdicts of one encoder (`compare_with_random_init`).

    Returns:
        ``'NAME beats its random initialisation on X of N tasks (P probe)'``,
        with one ``X of N tasks (P probe)`` per probe; ``''`` without verdicts.
    """
    if not verdicts:
        return ''
    counts = ', '.join(
        f'{wins} of {tasks} tasks ({probe} probe)'
        for probe, (wins, tasks) in count_wins(verdicts).items()
    )
    return f'{verdicts[0].encoder} beats its random initialisation on {counts}'


def random_init_comparisons(
    rows: Sequence[ResultRow],
) -> dict[str, list[RandomInitVerdict]]:
    """The verdicts of every encoder whose random-init companion is in ``rows``.

    An encoder ``NAME`` is compared when ``NAME (random init)`` also has rows.

    Args:
        rows: Benchmark results.

    Returns:
        Encoder name to its verdicts, in the order of ``rows``.
    """
    compared = {row.encoder for row in rows if MAIN_METRICS.get(row.kind) == row.metric}
    return {
        name: compare_with_random_init(rows, name)
        for name in dict.fromkeys(row.encoder for row in rows)
        if name in compared and random_init_name(name) in compared
    }
