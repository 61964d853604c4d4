"""One result of a benchmark run: a line of ``results.csv``.

Its own module so that the report (which writes it) and the random-init
comparison (which reads it) both import it without importing each other.
"""

import math
from dataclasses import dataclass

__all__ = ['ResultRow']


@dataclass(frozen=True)
class ResultRow:
    """One line of ``results.csv``: a metric of an encoder on a task.

    Attributes:
        encoder: Encoder name.
        task: Task name.
        kind: ``'regression'`` or ``'classification'``.
        probe: Probe name.
        split: Split name.
        metric: Metric name.
        mean: Mean over the evaluated folds.
        std: Standard deviation over the evaluated folds.
        folds: Number of evaluated folds.
        points: Number of labelled points.
        dim: Embedding size.
        seconds: Time spent in the probe fits.
        status: ``'ok'``, ``'flagged'`` (a usable mean with a caveat, see
            ``note``) or ``'failed'`` (``mean`` and ``std`` are ``nan``; never
            ranked nor counted as a win).
        note: Why the row is flagged or failed (low-n notes start with
            ``'low-n'``), else ``''``.
    """

    encoder: str
    task: str
    kind: str
    probe: str
    split: str
    metric: str
    mean: float
    std: float
    folds: int
    points: int
    dim: int
    seconds: float
    status: str = 'ok'
    note: str = ''

    @property
    def failed(self) -> bool:
        """Whether the row has no usable mean."""
        return self.status == 'failed' or not math.isfinite(self.mean)
