"""Maps of location embeddings: principal components shown as RGB.

A location encoder is evaluated at the centres of a global grid; the first
three principal components of the embeddings (area-weighted, so that the
crowded polar cells of a lon/lat grid do not dominate) become the red, green
and blue channels of an image in plate carree, with the coastlines of a land
mask drawn on top. Places the encoder deems alike get alike colours.
"""

import os
import pathlib
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ..atomic import atomic_output
from .bluemarble import LandMask

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    'embed_grid',
    'global_grid',
    'principal_components_rgb',
    'write_embedding_map',
]

FloatArray = npt.NDArray[np.float64]


def global_grid(resolution: float = 0.5) -> tuple[FloatArray, FloatArray]:
    """Cell centres of a global lon/lat grid, north up.

    Args:
        resolution: Cell size in degrees; must divide 180.

    Returns:
        ``(lon, lat)``, each ``(180 / resolution, 360 / resolution)``; row 0 is
        the northernmost row and column 0 the westernmost column.

    Raises:
        ValueError: If ``resolution`` does not divide 180.
    """
    rows = 180.0 / resolution
    if resolution <= 0 or abs(rows - round(rows)) > 1e-9:
        raise ValueError(f'resolution must divide 180 degrees, got {resolution}')
    n_rows = round(rows)
    lon = -180.0 + resolution * (np.arange(2 * n_rows) + 0.5)
    lat = 90.0 - resolution * (np.arange(n_rows) + 0.5)
    lon_grid, lat_grid = np.meshgrid(lon, lat)
    return lon_grid, lat_grid


def embed_grid(
    encoder: nn.Module, resolution: float = 0.5, batch_size: int = 65536
) -> npt.NDArray[np.float32]:
    """Embed the cell centres of a global grid.

    Args:
        encoder: Maps ``(N, 2)`` (lon, lat) float32 tensors to ``(N, D)``; run
            in eval mode without gradients (its mode is restored afterwards).
        resolution: Grid cell size in degrees (`global_grid`).
        batch_size: Points per forward pass.

    Returns:
        ``(rows, cols, D)`` float32 embeddings.
    """
    lon, lat = global_grid(resolution)
    coords = torch.from_numpy(np.stack([lon.ravel(), lat.ravel()], axis=1)).float()
    device = next(encoder.parameters(), torch.empty(0)).device
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            parts = [
                encoder(coords[i : i + batch_size].to(device)).float().cpu()
                for i in range(0, len(coords), batch_size)
            ]
    finally:
        encoder.train(was_training)
    embeddings = torch.cat(parts).numpy()
    return embeddings.reshape(*lon.shape, -1)


def principal_components_rgb(
    embeddings: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    clip_percentile: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    r"""Project embeddings on their first three principal components as colours.

    With weights $w_i$ (e.g. cell areas), the mean is
    $\mu = \sum_i w_i x_i / \sum_i w_i$ and the components are the leading
    eigenvectors of $\sum_i w_i (x_i - \mu)(x_i - \mu)^\top / \sum_i w_i$.
    Each component's scores are mapped linearly from their
    ``clip_percentile`` and ``100 - clip_percentile`` percentiles to $[0, 1]$
    and clipped. The sign of each component is fixed so that its largest
    loading is positive, which makes the colours reproducible.

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
    if weights is None:
        w = np.ones(len(flat))
    else:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), shape).ravel()
    w = w / w.sum()
    centred = flat - w @ flat
    covariance = (centred * w[:, None]).T @ centred
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1][:3]
    components = eigenvectors[:, order]
    signs = np.sign(components[np.abs(components).argmax(axis=0), range(len(order))])
    components = components * np.where(signs == 0, 1.0, signs)
    scores = centred @ components
    rgb = np.full((len(flat), 3), 0.5)
    explained = np.zeros(3)
    total = max(float(eigenvalues.clip(min=0).sum()), 1e-300)
    for channel in range(len(order)):
        explained[channel] = max(float(eigenvalues[order[channel]]), 0.0) / total
        low, high = np.percentile(
            scores[:, channel], [clip_percentile, 100.0 - clip_percentile]
        )
        if high > low:
            rgb[:, channel] = np.clip((scores[:, channel] - low) / (high - low), 0, 1)
    return rgb.reshape(*shape, 3), explained


def write_embedding_map(
    encoder: nn.Module,
    path: str | os.PathLike[str],
    *,
    resolution: float = 0.5,
    land_mask: LandMask | None = None,
    weights: npt.ArrayLike | None = None,
    title: str | None = None,
    overwrite: bool = False,
    dpi: int = 150,
) -> FloatArray:
    r"""Draw the first three principal components of an encoder as an RGB map.

    Args:
        encoder: A location encoder (``(N, 2)`` (lon, lat) -> ``(N, D)``).
        path: Output PNG; written atomically.
        resolution: Grid cell size in degrees.
        land_mask: Coastlines to draw (the 0.5 contour of the land fraction);
            None for none.
        weights: Weight of each grid cell in the PCA, ``(rows, cols)`` as
            `global_grid`; by default the cell areas ($\propto \cos$ lat).
            The demo weights cells by the density of its training points, so
            that the components describe the places the model learnt from.
        title: Figure title; a default one names the explained variance.
        overwrite: Replace an existing file.
        dpi: Resolution of the PNG (the figure is 10 x 5.6 inches).

    Returns:
        The share of variance explained by each of the three components.

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    embeddings = embed_grid(encoder, resolution)
    if weights is None:
        _, lat = global_grid(resolution)
        weights = np.cos(np.radians(lat))
    rgb, explained = principal_components_rgb(embeddings, weights)

    figure = Figure(figsize=(10, 5.6), layout='constrained')
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(
        rgb,
        extent=(-180, 180, -90, 90),
        origin='upper',
        interpolation='nearest',
        aspect='equal',
    )
    if land_mask is not None:
        _draw_coastlines(axes, land_mask)
    axes.set_xlim(-180, 180)
    axes.set_ylim(-90, 90)
    axes.set_xticks(range(-180, 181, 60))
    axes.set_yticks(range(-90, 91, 30))
    axes.set_xlabel('longitude (degrees)')
    axes.set_ylabel('latitude (degrees)')
    shares = ', '.join(f'{100 * share:.0f}%' for share in explained)
    axes.set_title(
        title
        or f'Location embeddings: principal components 1-3 as RGB '
        f'(variance explained {shares})'
    )
    with atomic_output(pathlib.Path(path), overwrite=overwrite) as temporary:
        figure.savefig(temporary, dpi=dpi, format='png')
    return explained


def _draw_coastlines(axes: 'Axes', land_mask: LandMask) -> None:
    """Draw the 0.5 contour of the land fraction of a mask.

    Args:
        axes: Matplotlib axes.
        land_mask: The mask; coarsened to at most 1080 x 2160 cells.
    """
    rows = land_mask.land.shape[0]
    factor = 1
    while rows // factor > 1080 and rows % (2 * factor) == 0:
        factor *= 2
    fraction = land_mask.coarsen(factor)
    cell = 180.0 / fraction.shape[0]
    lon = -180.0 + cell * (np.arange(fraction.shape[1]) + 0.5)
    lat = 90.0 - cell * (np.arange(fraction.shape[0]) + 0.5)
    axes.contour(lon, lat, fraction, levels=[0.5], colors='black', linewidths=0.5)
