"""Labelled points in memory: (lon, lat) -> label, as a PyTorch data set."""

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ['PointLabelDataset']


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
