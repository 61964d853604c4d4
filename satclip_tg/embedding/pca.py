"""Principal components of embeddings, for RGB (or grey) maps.

* `PCAProjection`: fitted on a sample, applied window by window (the
  previews of `write_grid_geotiff`), stretched to uint8.
* `principal_components_rgb`: the (optionally weighted) principal components
  of a whole map as colours in [0, 1] (the demo's and the
  `EmbeddingMapLogger`'s maps).

Both share `principal_axes`: leading eigenvectors of the (weighted) covariance,
each signed so that its largest loading is positive, which makes the colours
reproducible.
"""

import dataclasses
import os

import numpy as np
import numpy.typing as npt
import torch

__all__ = ['PCAProjection', 'principal_axes', 'principal_components_rgb', 'save_png']


def principal_axes(
    data: npt.NDArray[np.float64],
    components: int,
    weights: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    r"""The leading principal axes of a (weighted) sample.

    With weights $w_i$ the mean is $\mu = \sum_i w_i x_i / \sum_i w_i$ and the
    axes are the leading eigenvectors of
    $\sum_i w_i (x_i - \mu)(x_i - \mu)^\top / \sum_i w_i$. The sign of each
    axis is fixed so that its largest loading is positive.

    Args:
        data: ``(N, D)`` float64 sample.
        components: Number of axes k (at most D).
        weights: ``(N,)`` non-negative weights; None for equal weights.

    Returns:
        ``(mean, eigenvalues, axes)``: ``(D,)``, the ``(k,)`` largest
        eigenvalues (variances) in decreasing order, and ``(k, D)`` axes.
    """
    w = np.full(len(data), 1.0) if weights is None else weights
    w = w / w.sum()
    mean = w @ data
    centred = data - mean
    covariance = torch.from_numpy((centred * w[:, None]).T @ centred)
    threads = torch.get_num_threads()
    try:
        # A small D x D eigenproblem: one thread is fastest, and avoids the
        # multi-second stalls of a threaded LAPACK on a busy machine.
        torch.set_num_threads(1)
        values, vectors = torch.linalg.eigh(covariance)
    finally:
        torch.set_num_threads(threads)
    eigenvalues = values.flip(0)[:components].numpy()
    axes = vectors.flip(1)[:, :components].T.numpy()
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    return mean, eigenvalues, axes


@dataclasses.dataclass(frozen=True)
class PCAProjection:
    """A projection of embeddings onto their first principal components.

    Each component is stretched linearly so that its 1st percentile (on the
    fitting sample) maps to 0 and its 99th to 255. Signs are fixed so that
    each component's largest loading is positive, which makes the colours
    reproducible.

    Attributes:
        mean: ``(D,)`` mean embedding.
        components: ``(k, D)`` orthonormal principal directions.
        low: ``(k,)`` values mapped to 0.
        high: ``(k,)`` values mapped to 255.
    """

    mean: npt.NDArray[np.float64]
    components: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]

    @classmethod
    def fit(cls, sample: npt.ArrayLike, components: int = 3) -> 'PCAProjection':
        """Fit on a sample of embeddings.

        Args:
            sample: ``(N, D)`` embeddings (NaN rows are ignored).
            components: Number of components k (at most D).

        Returns:
            The projection.

        Raises:
            ValueError: If there are fewer than two usable rows or too many
                components are asked for.
        """
        data = np.asarray(sample, dtype=np.float64)
        data = data[np.isfinite(data).all(axis=1)]
        if data.shape[0] < 2 or not 1 <= components <= data.shape[1]:
            raise ValueError(
                f'PCA needs at least two finite embeddings and 1..{data.shape[1]} '
                f'components, got {data.shape[0]} rows and {components} components'
            )
        mean, _, directions = principal_axes(data, components)
        scores = (data - mean) @ directions.T
        low, high = np.percentile(scores, [1, 99], axis=0)
        high = np.where(high > low, high, low + 1e-12)
        return cls(mean, directions, low, high)

    def transform(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Principal-component scores.

        Args:
            embeddings: ``(..., D)`` embeddings.

        Returns:
            ``(..., k)`` scores.
        """
        values = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        mean = torch.from_numpy(self.mean.astype(np.float32))
        directions = torch.from_numpy(self.components.astype(np.float32))
        scores = (values - mean) @ directions.T
        return scores.numpy().astype(np.float64)

    def to_uint8(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """Scores stretched to 0..255 (NaN embeddings map to 0).

        Args:
            embeddings: ``(..., D)`` embeddings.

        Returns:
            ``(..., k)`` uint8 values.
        """
        scaled = (self.transform(embeddings) - self.low) / (self.high - self.low)
        scaled = np.nan_to_num(scaled, nan=0.0)
        return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def principal_components_rgb(
    embeddings: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    clip_percentile: float = 1.0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    r"""Project embeddings on their first three principal components as colours.

    The components are `principal_axes` (weighted by ``weights``, e.g. cell
    areas). Each component's scores are mapped linearly from their
    ``clip_percentile`` and ``100 - clip_percentile`` percentiles to $[0, 1]$
    and clipped.

    Args:
        embeddings: ``(..., D)`` embeddings, $D \ge 1$.
        weights: Weights broadcastable to ``embeddings.shape[:-1]``; None for
            equal weights.
        clip_percentile: Percentile (in %) clipped at each end of every
            channel, in $[0, 50)$.

    Returns:
        ``(rgb, explained)``: ``(..., 3)`` colours in $[0, 1]$ (a channel is
        0.5 where a component is missing or constant) and the share of the
        (weighted) variance each component explains, ``(3,)``.

    Raises:
        ValueError: If ``clip_percentile`` is out of range.
    """
    if not 0.0 <= clip_percentile < 50.0:
        raise ValueError(f'clip_percentile must be in [0, 50), got {clip_percentile}')
    x = np.asarray(embeddings, dtype=np.float64)
    shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    w = None
    if weights is not None:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), shape).ravel()
    count = min(3, flat.shape[1])
    mean, eigenvalues, axes = principal_axes(flat, flat.shape[1], w)
    scores = (flat - mean) @ axes[:count].T
    rgb = np.full((len(flat), 3), 0.5)
    explained = np.zeros(3)
    total = max(float(eigenvalues.clip(min=0).sum()), 1e-300)
    for channel in range(count):
        explained[channel] = max(float(eigenvalues[channel]), 0.0) / total
        low, high = np.percentile(
            scores[:, channel], [clip_percentile, 100.0 - clip_percentile]
        )
        if high > low:
            rgb[:, channel] = np.clip((scores[:, channel] - low) / (high - low), 0, 1)
    return rgb.reshape(*shape, 3), explained


def save_png(image: npt.NDArray[np.uint8], path: str | os.PathLike[str]) -> None:
    """Write an ``(H, W, 3)`` RGB or ``(H, W, 1)`` grey uint8 image as PNG.

    Args:
        image: The image.
        path: Output file (written as PNG whatever its suffix).
    """
    from PIL import Image

    pixels = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, format='PNG')
