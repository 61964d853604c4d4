"""Point-label data for downstream Lightning tasks: (lon, lat) -> label.

The points come from a registered downstream task (real data, cached by
`satclip_tg.benchmark.load_points`) or from a CSV file with columns ``lon``,
``lat`` and ``label``. One fold of the benchmark's splits is the test set;
a random fraction of the remaining points is the validation set.
"""

import csv
import pathlib
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchgeo.datamodules import NonGeoDataModule

from ..benchmark.splits import make_splits

__all__ = ['PointLabelDataModule', 'PointLabelDataset', 'read_point_csv']


class PointLabelDataset(Dataset[dict[str, Tensor]]):
    """Labelled points in memory.

    Samples are ``{'point': float32 (2,), 'label': float32 () or int64 ()}``.
    """

    def __init__(
        self, coords: NDArray[np.float64], labels: NDArray[np.generic]
    ) -> None:
        """Initialize the data set.

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.
            labels: ``(N,)`` float targets or integer class indices.
        """
        self.points = torch.as_tensor(coords, dtype=torch.float32)
        dtype = torch.float32 if np.asarray(labels).dtype.kind == 'f' else torch.long
        self.labels = torch.as_tensor(np.asarray(labels), dtype=dtype)

    def __len__(self) -> int:
        """Number of points."""
        return len(self.points)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """One sample.

        Args:
            index: Its index.

        Returns:
            ``{'point', 'label'}``.
        """
        return {'point': self.points[index], 'label': self.labels[index]}


def read_point_csv(
    path: str | pathlib.Path, task_type: str
) -> tuple[
    NDArray[np.float64], NDArray[np.float64] | NDArray[np.int64], tuple[str, ...]
]:
    """Read a CSV file with columns ``lon``, ``lat`` and ``label``.

    Args:
        path: The file.
        task_type: ``'regression'`` (numeric labels) or ``'classification'``
            (any labels: integers are used as class indices, anything else is
            mapped to the index of its sorted unique value).

    Returns:
        ``(coords, labels, classes)``; ``classes`` names the class indices.

    Raises:
        ValueError: If a column is missing or the file is empty.
    """
    with open(path, newline='', encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f'{path} has no rows')
    missing = {'lon', 'lat', 'label'} - set(rows[0])
    if missing:
        raise ValueError(f'{path} lacks the column(s) {", ".join(sorted(missing))}')
    coords = np.array([[float(r['lon']), float(r['lat'])] for r in rows])
    raw = [r['label'] for r in rows]
    if task_type == 'regression':
        return coords, np.array([float(v) for v in raw]), ()
    try:
        indices = np.array([int(v) for v in raw], dtype=np.int64)
        return coords, indices, tuple(str(i) for i in range(int(indices.max()) + 1))
    except ValueError:
        names = tuple(sorted(set(raw)))
        lookup = {name: i for i, name in enumerate(names)}
        return coords, np.array([lookup[v] for v in raw], dtype=np.int64), names


class PointLabelDataModule(NonGeoDataModule):
    """Labelled points from a downstream task or a CSV file.

    Batches: ``{'point': float32 (B, 2) (lon, lat) degrees, 'label': (B,)}``,
    labels float32 (regression; standardized with the training mean and
    standard deviation when ``standardize``, see ``target_mean`` and
    ``target_std``) or int64 class indices.

    The test set is fold ``fold`` of `make_splits(split, ...)` (the
    benchmark's splits); the validation set is a seeded random
    ``val_fraction`` of the other points; the rest trains. ``predict`` uses
    all points.
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
        """
        if self.path is not None:
            coords, labels, classes = read_point_csv(self.path, str(self.task_type))
        else:
            from ..benchmark.tasks import load_points

            points = load_points(
                str(self.task), self.num_points, self.seed, cache_dir=self.cache_dir
            )
            coords, labels, classes = points.coords, points.labels, points.classes
            self.task_type = (
                'regression' if points.kind == 'regression' else ('classification')
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
            from ..benchmark.data import continent_of

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
