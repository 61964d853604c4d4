"""Maps of location embeddings: principal components shown as RGB.

A location encoder is evaluated at the centres of a global grid; the first
three principal components of the embeddings (area-weighted, so that the
crowded polar cells of a lon/lat grid do not dominate) become the red, green
and blue channels of an image in plate carree, with the coastlines of a land
mask drawn on top. Places the encoder deems alike get alike colours.

The grid embedding and the PCA colouring are `satclip_tg.embedding`'s
(`embed_grid`, `principal_components_rgb`); this module draws the map.
"""

import os
import pathlib
import warnings
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from torch import nn

from ..atomic import atomic_output
from ..datasets.bluemarble import LandMask

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


def _embed_global_grid(
    encoder: nn.Module, resolution: float = 0.5
) -> npt.NDArray[np.float32]:
    """Embed the cell centres of `global_grid`; the encoder's mode is kept.

    Args:
        encoder: Maps ``(N, 2)`` (lon, lat) tensors to ``(N, D)``; run in eval
            mode without gradients (its mode is restored afterwards).
        resolution: Grid cell size in degrees; must divide 180.

    Returns:
        ``(rows, cols, D)`` float32 embeddings, row 0 northernmost.
    """
    from ..embedding.grid import GridSpec, embed_grid

    was_training = encoder.training
    try:
        return embed_grid(encoder, GridSpec.from_bbox((-180, -90, 180, 90), resolution))
    finally:
        encoder.train(was_training)


def embed_grid(
    encoder: nn.Module, resolution: float = 0.5, batch_size: int = 65536
) -> npt.NDArray[np.float32]:
    """Deprecated: use `satclip_tg.embedding.embed_grid` with a `GridSpec`.

    Args:
        encoder: Maps ``(N, 2)`` (lon, lat) tensors to ``(N, D)``; run in eval
            mode without gradients (its mode is restored afterwards).
        resolution: Grid cell size in degrees (`global_grid`).
        batch_size: Ignored (the grid is embedded in bounded row bands).

    Returns:
        ``(rows, cols, D)`` float32 embeddings.
    """
    _deprecated('embed_grid', 'satclip_tg.embedding.embed_grid')
    return _embed_global_grid(encoder, resolution)


def principal_components_rgb(
    embeddings: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    clip_percentile: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """Deprecated: use `satclip_tg.embedding.principal_components_rgb`.

    Args:
        embeddings: ``(..., D)`` embeddings.
        weights: Weights broadcastable to ``embeddings.shape[:-1]``.
        clip_percentile: Percentile (in %) clipped at each end of every channel.

    Returns:
        ``(rgb, explained)`` as the new function.
    """
    from ..embedding.pca import principal_components_rgb as colours

    _deprecated('principal_components_rgb', 'satclip_tg.embedding.pca')
    return colours(embeddings, weights, clip_percentile)


def _deprecated(name: str, replacement: str) -> None:
    warnings.warn(
        f'satclip_tg.demo.embedding_map.{name} is deprecated; use {replacement}',
        DeprecationWarning,
        stacklevel=3,
    )


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

    from ..embedding.pca import principal_components_rgb as colours

    embeddings = _embed_global_grid(encoder, resolution)
    if weights is None:
        _, lat = global_grid(resolution)
        weights = np.cos(np.radians(lat))
    rgb, explained = colours(embeddings, weights)

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
