"""A frozen location encoder's embedding as a sample feature.

`LocationEmbedding` is a TorchGeo-style transform: an `nn.Module` that takes
a sample (or a batch) dict and returns it with one more key, the location
embedding of where the sample was taken. Where comes from, in this order:

* ``point``: ``(2,)`` or ``(B, 2)`` (lon, lat) in degrees, the key that
  satclip-tg's NonGeo data sets (and `PointLabelDataset`) provide;
* ``bounds``: the centre of a GeoDataset sample's bounding box, reprojected
  from its CRS to (lon, lat). TorchGeo 0.10 samples hold ``bounds`` as a
  ``(9,)`` (or batched ``(B, 9)``) tensor ``[xmin, xmax, xres, ymin, ymax,
  yres, tmin, tmax, tres]`` and carry no CRS, so the CRS comes from a
  ``crs`` key when present, else from the transform's ``crs`` argument
  (pass ``dataset.crs``). Older ``(6,)`` tensors ``[xmin, xmax, ymin, ymax,
  tmin, tmax]`` and `BoundingBox`-like objects (``minx`` ... attributes)
  are read too.

`sample_points` and `resolve_location_encoder` are shared with the fusion
tasks (`satclip_tg.tasks.fusion`), so both read locations the same way.
"""

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from pyproj import CRS as PROJ_CRS
from pyproj import Transformer
from rasterio.crs import CRS as RIO_CRS
from torch import Tensor, nn

from ..location.encoder import encoder_device, encoder_dtype

__all__ = [
    'LocationEmbedding',
    'is_batched',
    'resolve_location_encoder',
    'sample_points',
]

_POINT_KEY = 'point'
_BOUNDS_KEY = 'bounds'
_CRS_KEY = 'crs'


def resolve_location_encoder(encoder: nn.Module | str) -> nn.Module:
    """A location encoder from a module, or from a name/path to load.

    Args:
        encoder: A module mapping ``(N, 2)`` (lon, lat) to ``(N, D)``, or a
            source accepted by `satclip_tg.pretrained.load_location_encoder`
            (a checkpoint path, an official Hugging Face id such as
            ``'microsoft/SatCLIP-ViT16-L40'``, a TorchGeo weights name).

    Returns:
        The module.

    Raises:
        TypeError: If ``encoder`` is neither a module nor a string.
    """
    if isinstance(encoder, nn.Module):
        return encoder
    if isinstance(encoder, str):
        # Imported here: loading pulls in checkpoint handling that a
        # module-only user never needs.
        from ..pretrained import load_location_encoder

        return load_location_encoder(encoder)
    raise TypeError(
        'location encoder must be an nn.Module or a checkpoint path / model '
        f'name for load_location_encoder, got {type(encoder).__name__}'
    )


@functools.lru_cache(maxsize=16)
def _to_lonlat(wkt: str) -> Transformer:
    # always_xy: (x, y) in, (lon, lat) out, whatever the CRS's axis order.
    return Transformer.from_crs(PROJ_CRS.from_wkt(wkt), 'EPSG:4326', always_xy=True)


def _wkt(crs: Any) -> str:
    try:
        return str(PROJ_CRS.from_user_input(crs).to_wkt())
    except Exception as error:  # pyproj raises CRSError, rasterio others
        raise ValueError(
            f'cannot read the CRS {crs!r} ({error}); give an EPSG code such as '
            f"'EPSG:32632', WKT, or a pyproj/rasterio CRS"
        ) from None


def _bounds_centres(bounds: Any) -> tuple[Tensor, bool]:
    """Centres ``(N, 2)`` (x, y) in the bounds' CRS, and whether batched."""
    if isinstance(bounds, Tensor):
        values = bounds.detach().cpu().to(torch.float64)
        batched = values.ndim == 2
        rows = values if batched else values.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] not in (6, 9):
            raise ValueError(
                f"'bounds' has shape {tuple(bounds.shape)}; expected (9,) or "
                '(B, 9) [xmin, xmax, xres, ymin, ymax, yres, tmin, tmax, tres] '
                '(TorchGeo 0.10) or (6,) / (B, 6) [xmin, xmax, ymin, ymax, '
                'tmin, tmax]'
            )
        y0 = 3 if rows.shape[1] == 9 else 2
        x = (rows[:, 0] + rows[:, 1]) / 2
        y = (rows[:, y0] + rows[:, y0 + 1]) / 2
        return torch.stack([x, y], dim=1), batched
    if hasattr(bounds, 'minx'):
        box = bounds
        centre = [[(box.minx + box.maxx) / 2, (box.miny + box.maxy) / 2]]
        return torch.tensor(centre, dtype=torch.float64), False
    if isinstance(bounds, Sequence) and bounds and hasattr(bounds[0], 'minx'):
        centres = [[(b.minx + b.maxx) / 2, (b.miny + b.maxy) / 2] for b in bounds]
        return torch.tensor(centres, dtype=torch.float64), True
    raise ValueError(
        f"'bounds' of type {type(bounds).__name__} is not a bounding box: expected "
        "TorchGeo's (9,) / (B, 9) bounds tensor or BoundingBox objects"
    )


def _reproject(centres: Tensor, crs: Any) -> Tensor:
    """(x, y) in ``crs`` (one CRS, or one per row) to (lon, lat) degrees."""
    if isinstance(crs, Sequence) and not isinstance(crs, str):
        if len(crs) != len(centres):
            raise ValueError(
                f"'crs' lists {len(crs)} CRSs for {len(centres)} bounding boxes"
            )
        groups = [_wkt(c) for c in crs]
    else:
        groups = [_wkt(crs)] * len(centres)
    out = torch.empty_like(centres)
    for wkt in dict.fromkeys(groups):
        rows = torch.tensor([i for i, g in enumerate(groups) if g == wkt])
        lon, lat = _to_lonlat(wkt).transform(
            centres[rows, 0].numpy(), centres[rows, 1].numpy()
        )
        out[rows, 0] = torch.as_tensor(lon, dtype=torch.float64)
        out[rows, 1] = torch.as_tensor(lat, dtype=torch.float64)
    return out


def _locate(sample: Mapping[str, Any], crs: Any) -> tuple[Tensor, bool]:
    """`sample_points`, and whether the location entry is batched."""
    if _POINT_KEY in sample:
        point = torch.as_tensor(sample[_POINT_KEY]).detach()
        if point.shape[-1:] != (2,) or point.ndim > 2:
            raise ValueError(
                f"'point' has shape {tuple(point.shape)}; expected (2,) or (B, 2) "
                '(lon, lat) in degrees'
            )
        return point.to(torch.float64).reshape(-1, 2), point.ndim == 2
    if _BOUNDS_KEY in sample:
        centres, batched = _bounds_centres(sample[_BOUNDS_KEY])
        source = sample.get(_CRS_KEY, crs)
        if source is None:
            raise ValueError(
                "the sample has 'bounds' but no CRS to read them in: TorchGeo "
                "0.10 samples carry no 'crs' key, so pass the data set's CRS, "
                'e.g. LocationEmbedding(encoder, crs=dataset.crs) or crs: '
                'EPSG:32632 in YAML'
            )
        return _reproject(centres, source), batched
    raise ValueError(
        "the sample has neither 'point' ((lon, lat) in degrees) nor 'bounds' "
        f'(a GeoDataset bounding box); its keys are {sorted(sample)}. Add a '
        "'point' key to NonGeo samples, or use a GeoDataset"
    )


def sample_points(
    sample: Mapping[str, Any], crs: str | PROJ_CRS | RIO_CRS | None = None
) -> Tensor:
    """Where a sample or batch was taken, as (lon, lat) degrees.

    Args:
        sample: A sample or batch dict with ``point`` ((lon, lat) degrees) or
            ``bounds`` (and, optionally, ``crs``).
        crs: The CRS of ``bounds`` when the sample has no ``crs`` key (for
            TorchGeo 0.10 GeoDatasets: ``dataset.crs``).

    Returns:
        ``(N, 2)`` float64 (lon, lat): ``N = 1`` for a single sample, ``B``
        for a batch (see `is_batched`).

    Raises:
        ValueError: If the sample has neither ``point`` nor ``bounds``, or
            ``bounds`` without a known CRS, or a malformed entry.
    """
    return _locate(sample, crs)[0]


def is_batched(sample: Mapping[str, Any]) -> bool:
    """Whether the location entry of a sample dict is batched.

    Args:
        sample: A sample or batch dict.

    Returns:
        True for a ``(B, 2)`` point or ``(B, 9)`` bounds (or a list of boxes).
    """
    if _POINT_KEY in sample:
        return torch.as_tensor(sample[_POINT_KEY]).ndim == 2
    if _BOUNDS_KEY in sample:
        return _bounds_centres(sample[_BOUNDS_KEY])[1]
    return False


class LocationEmbedding(nn.Module):
    """Add a frozen location encoder's embedding to each sample or batch.

    Works as a dataset ``transforms`` callable (one sample: adds a ``(D,)``
    embedding) and in a data module's ``aug`` / ``train_aug`` (a batch:
    adds ``(B, D)``). The encoder runs in eval mode without gradients
    (dropout off) on its own device; the float32 embedding is put on the
    device of the sample's location.

    Example::

        dataset = MyRasterDataset(
            paths, transforms=LocationEmbedding('runs/demo/satclip-demo.ckpt',
                                                crs='EPSG:32632'))
    """

    def __init__(
        self,
        encoder: nn.Module | str,
        key: str = 'location_embedding',
        crs: str | PROJ_CRS | RIO_CRS | None = None,
    ) -> None:
        """Initialize the transform.

        Args:
            encoder: A location encoder module, or a source accepted by
                `satclip_tg.pretrained.load_location_encoder` (checkpoint
                path, official model id, TorchGeo weights name).
            key: Key the embedding is stored under.
            crs: CRS of ``bounds`` for samples without a ``crs`` key (a
                GeoDataset's ``dataset.crs``); unused for ``point`` samples.

        Raises:
            ValueError: If ``crs`` is not a CRS.
        """
        super().__init__()
        self.encoder = resolve_location_encoder(encoder)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.key = key
        # Checked now, so a typo in YAML fails at start-up, not mid-epoch.
        self.crs: str | PROJ_CRS | RIO_CRS | None = crs
        if crs is not None:
            _wkt(crs)

    def train(self, mode: bool = True) -> 'LocationEmbedding':
        """Keep the encoder in eval mode whatever ``mode`` is.

        Args:
            mode: Ignored for the encoder (it is frozen).

        Returns:
            The transform.
        """
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Add the embedding of the sample's location.

        Args:
            sample: A sample or batch dict with ``point`` or ``bounds``.

        Returns:
            The same dict with ``key`` set to a float32 ``(D,)`` (sample) or
            ``(B, D)`` (batch) embedding.

        Raises:
            ValueError: If the sample has no usable location.
        """
        points, batched = _locate(sample, self.crs)
        source = sample.get(_POINT_KEY, sample.get(_BOUNDS_KEY))
        device = source.device if isinstance(source, Tensor) else torch.device('cpu')
        with torch.no_grad():
            inputs = points.to(
                encoder_device(self.encoder), encoder_dtype(self.encoder)
            )
            embedding = self.encoder(inputs).to(device, torch.float32)
        sample[self.key] = embedding if batched else embedding[0]
        return sample

    def extra_repr(self) -> str:
        """Key and CRS in the module's repr."""
        return f'key={self.key!r}, crs={self.crs!r}'
