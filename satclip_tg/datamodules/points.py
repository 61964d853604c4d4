"""Point-label data for downstream Lightning tasks: (lon, lat) -> label.

The points come from a registered downstream data set (real data, cached by
`satclip_tg.datasets.downstream.load_points`) or from a CSV file with columns
``lon``, ``lat`` and ``label``. One fold of the geographic splits
(`satclip_tg.datasets.splits`) is the test set; a random fraction of the
remaining points is the validation set.

Bad points are refused, never cast: a CSV file with an empty cell, a
coordinate that is not a finite number within [-180, 180] x [-90, 90], a
regression target that is not a finite number, or a class label that is not
an integer in ``[0, num_classes)`` raises a `ValueError` naming the lines
(as numbered in the file, the header being line 1), the columns and the
number of bad rows.
"""

import csv
import pathlib
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from torch import nn
from torchgeo.datamodules import NonGeoDataModule

from ..datasets.downstream.checks import (
    Problem,
    bad_rows_error,
    check_point_labels,
    coordinate_problem,
    label_problem,
)
from ..datasets.points import PointLabelDataset
from ..datasets.splits import make_splits

__all__ = ['PointLabelDataModule', 'PointLabelDataset', 'read_point_csv']


def _number(text: str | None) -> tuple[float | None, str | None]:
    """A cell as a float, or ``(None, what is wrong)``."""
    if text is None or not text.strip():
        return None, 'empty'
    try:
        return float(text), None
    except ValueError:
        return None, f'{text.strip()!r} is not a number'


def read_point_csv(
    path: str | pathlib.Path, task_type: str, num_classes: int | None = None
) -> tuple[
    NDArray[np.float64], NDArray[np.float64] | NDArray[np.int64], tuple[str, ...]
]:
    """Read a CSV file with columns ``lon``, ``lat`` and ``label``.

    Class labels are either all integers (class indices, ``2.0`` counts as
    ``2``) or all names (mapped to the index of their sorted unique value);
    a mix of the two, an empty label, NaN, a fractional or negative index, or
    an index not below ``num_classes`` is an error.

    Args:
        path: The file.
        task_type: ``'regression'`` (numeric labels) or ``'classification'``.
        num_classes: The number of classes, if known (classification): class
            indices must be below it, and names at most that many.

    Returns:
        ``(coords, labels, classes)``; ``classes`` names the class indices
        (for integer labels ``'0'``, ``'1'``, ... up to ``num_classes`` when
        given, else up to the largest label).

    Raises:
        ValueError: If a column is missing, the file is empty, or cells are
            bad: the message names the lines (as numbered in the file, the
            header being line 1), the columns and the number of bad rows.
    """
    with open(path, newline='', encoding='utf-8') as handle:
        reader = csv.DictReader(handle)
        records = [(reader.line_num, record) for record in reader]
    if not records:
        raise ValueError(f'{path} has no rows')
    missing = {'lon', 'lat', 'label'} - set(records[0][1])
    if missing:
        raise ValueError(f'{path} lacks the column(s) {", ".join(sorted(missing))}')
    problems: list[Problem] = []
    coords = np.zeros((len(records), 2))
    for row, (line, record) in enumerate(records):
        for column_index, column in enumerate(('lon', 'lat')):
            value, what = _number(record[column])
            if value is not None:
                what = coordinate_problem(column, value)
                coords[row, column_index] = value
            if what is not None:
                problems.append((line, column, what))
    labels, classes = _csv_labels(records, task_type, num_classes, problems)
    if problems:
        # Sorted by line, as read in the file.
        problems.sort(key=lambda problem: problem[0])
        raise bad_rows_error(
            str(path),
            problems,
            'line numbers as in the file, the header being line 1',
            row_word='line',
        )
    if num_classes is not None and len(classes) > num_classes:
        raise ValueError(
            f'{path}: {len(classes)} class names but num_classes = {num_classes}'
        )
    return coords, labels, classes


def _csv_labels(
    records: list[tuple[int, dict[str, str | None]]],
    task_type: str,
    num_classes: int | None,
    problems: list[Problem],
) -> tuple[NDArray[np.float64] | NDArray[np.int64], tuple[str, ...]]:
    """The labels of `read_point_csv`'s records; bad cells go to ``problems``."""
    parsed = [
        (line, record['label'], *_number(record['label'])) for line, record in records
    ]
    if task_type == 'regression':
        values = np.zeros(len(records))
        for row, (line, _, value, what) in enumerate(parsed):
            if value is not None:
                what = label_problem(value, task_type)
                values[row] = value
            if what is not None:
                problems.append((line, 'label', what))
        return values, ()
    numeric = sum(value is not None for _, _, value, _ in parsed)
    named = sum(what is not None and what != 'empty' for _, _, _, what in parsed)
    if numeric >= named:
        # Class indices: a name among them is a stray value, not a class.
        indices = np.zeros(len(records), dtype=np.int64)
        for row, (line, _, value, what) in enumerate(parsed):
            if value is not None:
                what = label_problem(value, task_type, num_classes)
                if what is None:
                    indices[row] = round(value)
            elif what != 'empty':
                what = f'{what}, but the other labels are class indices'
            if what is not None:
                problems.append((line, 'label', what))
        count = num_classes or (int(indices.max()) + 1 if len(indices) else 0)
        return indices, tuple(str(i) for i in range(count))
    # Class names. A number among them (NaN too) is a stray value.
    for line, text, value, what in parsed:
        if what == 'empty':
            problems.append((line, 'label', what))
        elif value is not None:
            problems.append(
                (line, 'label', f'{str(text).strip()!r} is a number among class names')
            )
    names = tuple(
        sorted(
            {str(text) for _, text, _, what in parsed if what not in (None, 'empty')}
        )
    )
    lookup = {name: i for i, name in enumerate(names)}
    indices = np.array([lookup.get(str(text), 0) for _, text, _, _ in parsed], np.int64)
    return indices, names


class PointLabelDataModule(NonGeoDataModule):
    """Labelled points from a downstream task or a CSV file.

    Batches: ``{'point': float32 (B, 2) (lon, lat) degrees, 'label': (B,)}``,
    labels float32 (regression; standardized with the training mean and
    standard deviation when ``standardize``, see ``target_mean`` and
    ``target_std``) or int64 class indices.

    The test set is fold ``fold`` of `make_splits(split, ...)` (the
    benchmark's splits, `satclip_tg.datasets.splits`); the validation set is
    a seeded random ``val_fraction`` of the other points; the rest trains.
    ``predict`` uses all points.
    """

    def __init__(
        self,
        task: str | None = None,
        path: str | None = None,
        task_type: Literal['regression', 'classification'] | None = None,
        num_points: int = 2000,
        split: Literal['random', 'spatial-block', 'leave-one-continent-out'] = (
            'spatial-block'
        ),
        num_folds: int = 5,
        fold: int = 0,
        block_size: float = 10.0,
        val_fraction: float = 0.1,
        standardize: bool = True,
        seed: int = 0,
        cache_dir: str | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        num_classes: int | None = None,
    ) -> None:
        """Initialize the data module.

        Args:
            task: A registered downstream task name (e.g. ``'air_temperature'``);
                exclusive with ``path``.
            path: A CSV file with columns ``lon``, ``lat``, ``label``.
            task_type: ``'regression'`` or ``'classification'``; required with
                ``path``, taken from the task otherwise.
            num_points: Points to sample from ``task``.
            split: The split strategy; leave-one-continent-out holds out the
                ``fold``-th continent in sorted order.
            num_folds: Folds of random and spatial-block splits.
            fold: Which fold is the test set.
            block_size: Spatial block size in degrees.
            val_fraction: Fraction of the non-test points used for validation.
            standardize: Standardize regression targets with training statistics.
            seed: Seed of the sampling and the splits.
            cache_dir: The benchmark cache folder.
            batch_size: Points per batch.
            num_workers: DataLoader workers.
            num_classes: The number of classes the model predicts
                (classification), if known: labels must then be below it
                (the model's ``num_classes``; a clear error here instead of
                an index error in the loss).

        Raises:
            ValueError: If neither or both of ``task`` and ``path`` are given,
                or an argument is out of range.
        """
        if (task is None) == (path is None):
            raise ValueError('give exactly one of task (a registered name) or path')
        if path is not None and task_type is None:
            raise ValueError('task_type is required with path')
        if not 0 <= val_fraction < 1:
            raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
        super().__init__(
            PointLabelDataset,  # type: ignore[arg-type]
            batch_size,
            num_workers,
        )
        self.task = task
        self.path = path
        self.task_type = task_type
        self.num_classes = num_classes
        self.num_points = num_points
        self.split = split
        self.num_folds = num_folds
        self.fold = fold
        self.block_size = block_size
        self.val_fraction = val_fraction
        self.standardize = standardize
        self.seed = seed
        self.cache_dir = cache_dir
        self.classes: tuple[str, ...] = ()
        self.target_mean = 0.0
        self.target_std = 1.0
        identity = nn.Identity()
        self.aug = identity
        self.train_aug = identity
        self.val_aug = identity
        self.test_aug = identity
        self.predict_aug = identity

    def load(
        self,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | NDArray[np.int64]]:
        """Read the labelled points.

        Returns:
            ``(coords, labels)``; also sets ``task_type`` and ``classes``.

        Raises:
            ValueError: For bad points or labels not below ``num_classes``,
                naming the rows (CSV: lines as numbered in the file; a task:
                rows counted from 0).
        """
        if self.path is not None:
            coords, labels, classes = read_point_csv(
                self.path, str(self.task_type), self.num_classes
            )
        else:
            from ..datasets.downstream.cache import load_points

            points = load_points(
                str(self.task), self.num_points, self.seed, cache_dir=self.cache_dir
            )
            coords, labels, classes = points.coords, points.labels, points.classes
            self.task_type = (
                'regression' if points.kind == 'regression' else ('classification')
            )
            if self.num_classes is not None:
                # The task's own labels are checked by load_points; this
                # catches a model configured with fewer classes.
                check_point_labels(
                    coords,
                    labels,
                    points.kind,
                    self.num_classes,
                    source=f'task {self.task!r} with num_classes = {self.num_classes}',
                )
        self.classes = classes
        return coords, labels

    def setup(self, stage: str) -> None:
        """Load the points and split them.

        Args:
            stage: ``'fit'``, ``'validate'``, ``'test'`` or ``'predict'``.

        Raises:
            ValueError: If ``fold`` is out of range.
        """
        coords, labels = self.load()
        groups = None
        if self.split == 'leave-one-continent-out':
            from ..datasets.downstream.readers import continent_of

            groups = continent_of(coords)
        folds = make_splits(
            self.split,
            coords,
            k=self.num_folds,
            block_size=self.block_size,
            seed=self.seed,
            groups=groups,
        )
        if not 0 <= self.fold < len(folds):
            raise ValueError(f'fold must be in [0, {len(folds)}), got {self.fold}')
        test = folds[self.fold].test
        rest = np.random.default_rng(self.seed).permutation(folds[self.fold].train)
        n_val = round(self.val_fraction * len(rest))
        val, train = np.sort(rest[:n_val]), np.sort(rest[n_val:])
        values: NDArray[np.generic] = labels
        if self.task_type == 'regression':
            floats = labels.astype(np.float64)
            if self.standardize:
                self.target_mean = float(floats[train].mean())
                self.target_std = float(floats[train].std()) or 1.0
            values = (floats - self.target_mean) / self.target_std
        self.train_dataset = PointLabelDataset(coords[train], values[train])
        self.val_dataset = PointLabelDataset(coords[val], values[val])
        self.test_dataset = PointLabelDataset(coords[test], values[test])
        self.predict_dataset = PointLabelDataset(coords, values)
