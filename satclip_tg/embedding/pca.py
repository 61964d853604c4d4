"""Principal components of embeddings, for RGB (or grey) preview maps."""

import dataclasses
import os

import numpy as np
import numpy.typing as npt
import torch

__all__ = ['PCAProjection', 'save_png']


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
        mean = data.mean(axis=0)
        centred = torch.from_numpy(data - mean)
        # Eigenvectors of the D x D scatter matrix: cheaper than an SVD of the
        # N x D sample, and accurate enough in float64 for a preview.
        scatter = centred.T @ centred
        threads = torch.get_num_threads()
        try:
            # A small eigenproblem: one thread is fastest, and avoids the
            # multi-second stalls of a threaded LAPACK on a busy machine.
            torch.set_num_threads(1)
            _, vectors = torch.linalg.eigh(scatter)
        finally:
            torch.set_num_threads(threads)
        directions = vectors.flip(1)[:, :components].T.numpy()
        signs = np.sign(
            directions[np.arange(components), np.abs(directions).argmax(axis=1)]
        )
        directions = directions * np.where(signs == 0, 1.0, signs)[:, None]
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


def save_png(image: npt.NDArray[np.uint8], path: str | os.PathLike[str]) -> None:
    """Write an ``(H, W, 3)`` RGB or ``(H, W, 1)`` grey uint8 image as PNG.

    Args:
        image: The image.
        path: Output file (written as PNG whatever its suffix).
    """
    from PIL import Image

    pixels = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, format='PNG')
