"""Batched SatCLIP preprocessing and augmentation, bounded in memory, with views.

Tiles arrive on the accelerator in their on-disk dtype (uint16 for S2-100K)
and are turned into model input here, a chunk of the batch at a time, so the
peak memory is the output batch plus one chunk's working copies, whatever the
batch size.

What is drawn for each image (crop window, flips, blur strength) is a
`ViewParameters`. It comes from one of three sources:

* `random_views`: fresh draws from the torch generator (live training);
* `centre_views`: the evaluation view (centre crop, nothing random);
* `seeded_views`: view ``v`` of tile ``i`` under seed ``s``, a pure function
  of ``(s, i, v)`` (a counter-based hash, the same on every machine and in
  every process). View 0 is the evaluation view. The feature cache renders
  these, so a rerun reproduces every view bit for bit.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchgeo.datasets.utils import Sample

__all__ = [
    'B10_INDEX',
    'SatCLIPBatchAugmentation',
    'ViewParameters',
    'centre_views',
    'check_normalisation',
    'jitter_points',
    'random_views',
    'seeded_views',
]

#: Index at which the (all-zero) Sentinel-2 B10 band is inserted: S2-100K has
#: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 | B11 B12, SSL4EO-S12 weights expect
#: B01 ... B09 B10 B11 B12.
B10_INDEX = 10

#: Range of the Gaussian blur's standard deviation in pixels (as torchvision's
#: ``GaussianBlur(3)`` in the reference).
BLUR_SIGMA = (0.1, 2.0)


@dataclass(frozen=True)
class ViewParameters:
    """What one view of each image in a batch is: crop window, flips, blur.

    Attributes:
        top: ``(B,)`` int64, first row of the crop window.
        left: ``(B,)`` int64, first column of the crop window.
        hflip: ``(B,)`` bool, mirror left-right.
        vflip: ``(B,)`` bool, mirror top-bottom.
        sigma: ``(B,)`` float32, standard deviation of the 3 x 3 Gaussian blur
            in pixels; 0 for no blur.
    """

    top: Tensor
    left: Tensor
    hflip: Tensor
    vflip: Tensor
    sigma: Tensor

    def __len__(self) -> int:
        return len(self.top)

    def __getitem__(self, rows: slice) -> 'ViewParameters':
        """Return the parameters of some images.

        Args:
            rows: The images.

        Returns:
            Their parameters.
        """
        return ViewParameters(
            self.top[rows],
            self.left[rows],
            self.hflip[rows],
            self.vflip[rows],
            self.sigma[rows],
        )

    def to(self, device: torch.device | str) -> 'ViewParameters':
        """Move the parameters to a device.

        Args:
            device: The device.

        Returns:
            The parameters on ``device``.
        """
        return ViewParameters(
            self.top.to(device),
            self.left.to(device),
            self.hflip.to(device),
            self.vflip.to(device),
            self.sigma.to(device),
        )


def check_normalisation(
    mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Check per-band normalisation settings.

    Args:
        mean: Per-band means, or None.
        std: Per-band standard deviations, or None.

    Returns:
        ``(mean, std)`` as tuples of floats, or ``(None, None)``.

    Raises:
        ValueError: If only one of them is given, they differ in length or
            are empty, or hold a non-finite value or a ``std`` <= 0.
    """
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise ValueError('give both mean and std (one value per band each), or neither')
    means, stds = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if not means or len(means) != len(stds):
        raise ValueError(
            f'mean and std need one value per band each, got {len(means)} mean(s) '
            f'and {len(stds)} std(s)'
        )
    if not all(math.isfinite(m) for m in means):
        raise ValueError(f'mean must hold finite numbers, got {list(means)}')
    if not all(math.isfinite(s) and s > 0 for s in stds):
        raise ValueError(f'std must hold finite numbers > 0, got {list(stds)}')
    return means, stds


def _check_crop(height: int, width: int, crop_size: int) -> None:
    if height < crop_size or width < crop_size:
        raise ValueError(
            f'images are {height}x{width} pixels, smaller than '
            f'crop_size={crop_size}; lower crop_size'
        )


def centre_views(
    batch_size: int,
    height: int,
    width: int,
    crop_size: int,
    device: torch.device | str = 'cpu',
) -> ViewParameters:
    """The evaluation view of every image: centre crop, no flips, no blur.

    Args:
        batch_size: Number of images.
        height: Image height in pixels.
        width: Image width in pixels.
        crop_size: Side of the crop.
        device: Device of the parameters.

    Returns:
        The parameters.
    """
    _check_crop(height, width, crop_size)
    top = (height - crop_size) // 2
    left = (width - crop_size) // 2
    off = torch.zeros(batch_size, dtype=torch.bool, device=device)
    return ViewParameters(
        torch.full((batch_size,), top, dtype=torch.int64, device=device),
        torch.full((batch_size,), left, dtype=torch.int64, device=device),
        off,
        off,
        off.float(),
    )


def random_views(
    batch_size: int,
    height: int,
    width: int,
    crop_size: int,
    *,
    flips: bool = True,
    blur: bool = True,
    device: torch.device | str = 'cpu',
    generator: torch.Generator | None = None,
) -> ViewParameters:
    """Random training views: random crop, flips with p = 0.5, blur strength.

    Args:
        batch_size: Number of images.
        height: Image height in pixels.
        width: Image width in pixels.
        crop_size: Side of the crop.
        flips: Draw horizontal and vertical flips.
        blur: Draw a blur sigma from U(0.1, 2.0); otherwise no blur.
        device: Device of the parameters.
        generator: Torch generator on ``device``; the default one if None.

    Returns:
        The parameters.
    """
    uniforms = torch.rand(batch_size, 5, device=device, generator=generator)
    return _views_from_uniforms(uniforms, height, width, crop_size, flips, blur)


def _views_from_uniforms(
    uniforms: Tensor, height: int, width: int, crop_size: int, flips: bool, blur: bool
) -> ViewParameters:
    """Training views from five U[0, 1) draws per image.

    Columns: crop row, crop column, horizontal flip, vertical flip, blur sigma.
    """
    _check_crop(height, width, crop_size)
    u = uniforms
    top = (u[:, 0] * (height - crop_size + 1)).long().clamp_(max=height - crop_size)
    left = (u[:, 1] * (width - crop_size + 1)).long().clamp_(max=width - crop_size)
    off = torch.zeros(len(u), dtype=torch.bool, device=u.device)
    low, high = BLUR_SIGMA
    return ViewParameters(
        top,
        left,
        u[:, 2] < 0.5 if flips else off,
        u[:, 3] < 0.5 if flips else off,
        (low + (high - low) * u[:, 4]).float() if blur else off.float(),
    )


def _mix64(value: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # SplitMix64's finaliser: a bijective 64-bit mix. NumPy uint64 arrays wrap
    # around on overflow, which is the modular arithmetic the hash needs.
    value = value + np.uint64(0x9E3779B97F4A7C15)
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


def _uniforms(
    seed: int, tiles: npt.NDArray[np.int64], view: int, draws: int
) -> npt.NDArray[np.float64]:
    """``(len(tiles), draws)`` uniforms in [0, 1): a pure function of the key."""
    key = _mix64(np.full(len(tiles), seed & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64))
    key = _mix64(key ^ tiles.astype(np.uint64))
    key = _mix64(key ^ np.uint64(view))
    counters = np.arange(draws, dtype=np.uint64)
    bits = _mix64(key[:, None] + counters[None, :])
    # The top 53 bits give every double in [0, 1) on a 2**-53 grid.
    uniform: npt.NDArray[np.float64] = (bits >> np.uint64(11)).astype(
        np.float64
    ) * 2.0**-53
    return uniform


def seeded_views(
    seed: int,
    tiles: Tensor | npt.ArrayLike,
    view: int,
    height: int,
    width: int,
    crop_size: int,
    *,
    flips: bool = True,
    blur: bool = True,
) -> ViewParameters:
    """View ``view`` of each tile: a pure function of (seed, tile index, view).

    View 0 is the evaluation view (`centre_views`). Views 1, 2, ... are
    training views drawn like `random_views`, but from a counter-based hash
    of ``(seed, tile, view)`` instead of a stateful generator: the same on
    every machine, in every process and in any batch composition.

    Args:
        seed: The seed.
        tiles: ``(B,)`` tile indices (rows of ``index.csv``).
        view: The view number, >= 0.
        height: Image height in pixels.
        width: Image width in pixels.
        crop_size: Side of the crop.
        flips: Draw flips in training views.
        blur: Draw a blur sigma in training views.

    Returns:
        The parameters, on the CPU.

    Raises:
        ValueError: If ``view`` is negative or a tile index is negative.
    """
    indices = np.asarray(
        tiles.cpu().numpy() if isinstance(tiles, Tensor) else tiles, dtype=np.int64
    ).reshape(-1)
    if view < 0:
        raise ValueError(f'view must be >= 0, got {view}')
    if (indices < 0).any():
        raise ValueError('tile indices must be >= 0')
    if view == 0:
        return centre_views(len(indices), height, width, crop_size)
    uniforms = torch.from_numpy(_uniforms(seed, indices, view, 5))
    return _views_from_uniforms(uniforms, height, width, crop_size, flips, blur)


def jitter_points(
    points: Tensor, half_width: float, generator: torch.Generator | None = None
) -> Tensor:
    """Add symmetric uniform noise U(-w, w) degrees to (lon, lat).

    Args:
        points: ``(B, 2)`` (lon, lat) in degrees.
        half_width: ``w`` in degrees; 0 returns ``points`` itself.
        generator: Torch generator on the points' device; the default if None.

    Returns:
        The jittered points: longitude wrapped into [-180, 180] across the
        dateline, latitude clamped to [-90, 90].
    """
    if half_width <= 0:
        return points
    noise = torch.rand(
        points.shape, dtype=points.dtype, device=points.device, generator=generator
    )
    moved = points + (noise * 2 - 1) * half_width
    lon, lat = moved[:, 0], moved[:, 1]
    lon = torch.where(lon > 180, lon - 360, lon)
    lon = torch.where(lon < -180, lon + 360, lon)
    return torch.stack([lon, lat.clamp(-90.0, 90.0)], dim=1)


#: Signed dtype of the same width, for the unsigned dtypes torch supports
#: only partly.
_SIGNED_VIEW = {torch.uint16: torch.int16, torch.uint32: torch.int32}


def _blur(images: Tensor, sigma: Tensor) -> Tensor:
    """3 x 3 Gaussian blur with one sigma per image, reflect padding."""
    batch, channels, height, width = images.shape
    offsets = torch.tensor([-1.0, 0.0, 1.0], device=images.device)
    # sigma 0 gives the identity kernel (0, 1, 0): exp(-inf) = 0.
    safe = sigma.to(images.device, torch.float32).clamp(min=1e-12)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * safe[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(images.dtype)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B * C, 3)
    flat = images.reshape(1, batch * channels, height, width)
    flat = F.pad(flat, (1, 1, 1, 1), mode='reflect')
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=batch * channels)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=batch * channels)
    return flat.reshape(batch, channels, height, width)


class SatCLIPBatchAugmentation(nn.Module):
    """Batched preprocessing and augmentation of SatCLIP batches.

    In this order, for each image: crop to ``crop_size`` (random in training,
    centred otherwise) and, in training, flip horizontally and vertically with
    p = 0.5; convert to float32 and divide by ``scale``; if ``mean`` and
    ``std`` are given, normalise each band, ``(x - mean[c]) / std[c]``; in
    training apply a 3 x 3 Gaussian blur with sigma from U(0.1, 2.0) (always
    applied, as torchvision's ``GaussianBlur(3)`` in the reference; reflect
    padding); insert an all-zero band at index 10 (Sentinel-2 B10, to go from
    the 12 bands of S2-100K to the 13 of SSL4EO-S12 backbones). Cropping
    first, in the input dtype, keeps the working copies small; flips,
    scaling, normalisation and the zero band commute with it, and the
    per-band normalisation commutes with the blur (a per-band affine map
    through a kernel summing to 1), so the result is the reference's.

    ``mean`` and ``std`` are per *input* band (12 for S2-100K, before B10 is
    inserted) and in the units left after ``scale`` (reflectance for
    S2-100K with ``scale=10000``); the inserted B10 band stays all zero.

    The batch is processed ``chunk_size`` images at a time into one
    preallocated float32 output: peak memory is the output plus one chunk's
    working copies.

    The coordinate jitter adds U(-j, j) degrees independently to longitude and
    latitude (the reference adds U(0, j), which shifts every point north-east
    on average); longitudes that leave [-180, 180] are wrapped around the
    dateline and latitudes are clamped to [-90, 90].

    Keys other than ``image`` and ``point`` pass through.
    """

    def __init__(
        self,
        *,
        crop_size: int,
        train: bool,
        scale: float | None = 10000.0,
        insert_zero_b10: bool = True,
        flips: bool = True,
        blur: bool = True,
        coordinate_jitter: float = 0.01,
        chunk_size: int = 256,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        """Initialize a new SatCLIPBatchAugmentation instance.

        Args:
            crop_size: Side of the square output images in pixels.
            train: If True, use the random training augmentations; if False,
                only the deterministic preprocessing and a centre crop.
            scale: Divide the pixel values by this; None to leave them as is.
            insert_zero_b10: Insert an all-zero band at index 10.
            flips: Random horizontal and vertical flips (training only).
            blur: Random Gaussian blur, kernel 3 (training only).
            coordinate_jitter: Half-width in degrees of the uniform noise added
                to lon and lat (training only); 0 switches it off.
            chunk_size: Images processed at once; bounds the working memory.
            mean: Per-band mean subtracted after scaling, one value per input
                band (before B10 is inserted); None for no normalisation.
            std: Per-band standard deviation divided by after subtracting
                ``mean``; given together with ``mean``.

        Raises:
            ValueError: If ``chunk_size`` or ``crop_size`` is below 1, or if
                ``mean`` and ``std`` are not both given (or both None), differ
                in length, or hold a non-finite value or a ``std`` <= 0.
        """
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be at least 1, got {chunk_size}')
        if crop_size < 1:
            raise ValueError(f'crop_size must be at least 1, got {crop_size}')
        self.crop_size = crop_size
        self.train_mode = train
        self.scale = scale
        self.insert_zero_b10 = insert_zero_b10
        self.flips = flips and train
        self.blur = blur and train
        self.coordinate_jitter = coordinate_jitter if train else 0.0
        self.chunk_size = chunk_size
        self.mean, self.std = check_normalisation(mean, std)

    def output_channels(self, bands: int) -> int:
        """Number of bands of the output for ``bands`` input bands.

        Args:
            bands: Input bands.

        Returns:
            ``bands + 1`` with the B10 band inserted, else ``bands``.
        """
        return bands + 1 if self.insert_zero_b10 else bands

    def draw(self, images: Tensor) -> ViewParameters:
        """Draw this module's views for a batch: random in training, else centre.

        Args:
            images: ``(B, C, H, W)`` images (only the shape and device are used).

        Returns:
            The parameters, on the images' device.
        """
        batch, _, height, width = images.shape
        if not self.train_mode:
            return centre_views(batch, height, width, self.crop_size, images.device)
        return random_views(
            batch,
            height,
            width,
            self.crop_size,
            flips=self.flips,
            blur=self.blur,
            device=images.device,
        )

    def render(self, images: Tensor, views: ViewParameters) -> Tensor:
        """Turn raw images into model input, with the given views.

        Args:
            images: ``(B, C, H, W)`` raw images, any real dtype (uint16 tiles
                stay uint16 until here).
            views: One view per image (`random_views`, `centre_views` or
                `seeded_views`).

        Returns:
            ``(B, C', crop_size, crop_size)`` float32 on the images' device,
            C' = `output_channels` (C).

        Raises:
            ValueError: If the images are smaller than ``crop_size``, or have
                fewer than 10 bands while ``insert_zero_b10`` is set, or the
                views do not match the batch, or ``mean``/``std`` do not have
                one value per band.
        """
        batch, bands, height, width = images.shape
        _check_crop(height, width, self.crop_size)
        if self.insert_zero_b10 and bands < B10_INDEX:
            raise ValueError(
                f'insert_zero_b10 needs Sentinel-2 images with 12 bands, got {bands}'
            )
        if len(views) != batch:
            raise ValueError(f'{len(views)} views for a batch of {batch} images')
        crop = self.crop_size
        out = torch.empty(
            (batch, self.output_channels(bands), crop, crop),
            dtype=torch.float32,
            device=images.device,
        )
        views = views.to(images.device)
        steps = torch.arange(crop, device=images.device)
        normalise = self._normalisation(bands, images.device)
        for start in range(0, batch, self.chunk_size):
            rows = slice(start, min(start + self.chunk_size, batch))
            chunk = self._crop_to_float(images[rows], views[rows], steps)
            if self.scale is not None:
                chunk /= self.scale
            if normalise is not None:
                chunk.sub_(normalise[0]).div_(normalise[1])
            if views.sigma[rows].any():
                chunk = _blur(chunk, views.sigma[rows])
            if self.insert_zero_b10:
                out[rows, :B10_INDEX] = chunk[:, :B10_INDEX]
                out[rows, B10_INDEX] = 0
                out[rows, B10_INDEX + 1 :] = chunk[:, B10_INDEX:]
            else:
                out[rows] = chunk
        return out

    def _normalisation(
        self, bands: int, device: torch.device
    ) -> tuple[Tensor, Tensor] | None:
        """``mean`` and ``std`` as ``(C, 1, 1)`` tensors on ``device``, or None."""
        if self.mean is None or self.std is None:
            return None
        if len(self.mean) != bands:
            raise ValueError(
                f'mean and std have {len(self.mean)} values, but the images have '
                f'{bands} bands; give one value per input band (before the B10 '
                f'band is inserted: 12 for S2-100K)'
            )
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device)
        std = torch.tensor(self.std, dtype=torch.float32, device=device)
        return mean[:, None, None], std[:, None, None]

    @staticmethod
    def _crop_to_float(images: Tensor, views: ViewParameters, steps: Tensor) -> Tensor:
        """Crop and flip by indexing in the input dtype, then convert to float32."""
        signed = _SIGNED_VIEW.get(images.dtype)
        # Wide unsigned integers support few operations (not indexing on every
        # device); the same bits viewed as a signed type do.
        source = images.view(signed) if signed is not None else images
        rows = views.top[:, None] + steps
        cols = views.left[:, None] + steps
        # A flip of the window is the window read backwards.
        rows = torch.where(views.vflip[:, None], rows.flip(1), rows)
        cols = torch.where(views.hflip[:, None], cols.flip(1), cols)
        batch = torch.arange(len(images), device=images.device)[:, None, None]
        # Advanced indices around a slice put their dimensions first:
        # (B, crop, crop, C).
        picked = source[batch, :, rows[:, :, None], cols[:, None, :]]
        picked = picked.permute(0, 3, 1, 2)
        if signed is None:
            return picked.float()
        bits = 8 * images.element_size()
        wide = picked.to(torch.int64 if bits == 32 else torch.int32)
        return wide.bitwise_and_((1 << bits) - 1).float()

    def forward(self, batch: Sample) -> Sample:
        """Preprocess and augment one batch.

        Args:
            batch: ``{'image': (B, C, H, W), 'point': (B, 2), ...}``.

        Returns:
            A new dict: ``image`` (B, C', crop_size, crop_size) float32, with
            C' = C + 1 if the B10 band is inserted; ``point`` (B, 2) (lon, lat)
            in degrees, jittered in training; other keys unchanged.

        Raises:
            ValueError: If the images are smaller than ``crop_size``, or have
                fewer than 10 bands while ``insert_zero_b10`` is set.
        """
        out = dict(batch)
        images = batch['image']
        out['image'] = self.render(images, self.draw(images))
        if 'point' in batch:
            out['point'] = self.jitter(batch['point'])
        return out

    def jitter(self, point: Tensor) -> Tensor:
        """Add symmetric uniform noise to (lon, lat), keeping them valid.

        Args:
            point: (B, 2) (lon, lat) in degrees.

        Returns:
            The jittered points (the input itself when the jitter is 0):
            longitude wrapped into [-180, 180], latitude clamped to [-90, 90].
        """
        return jitter_points(point, self.coordinate_jitter)

    def working_bytes(self, bands: int, itemsize: int) -> int:
        """Peak extra memory of `render` beyond its output, in bytes.

        One chunk is cropped in the input dtype, converted to float32 and, in
        training, blurred (a padded copy and two convolution outputs).

        Args:
            bands: Input bands.
            itemsize: Bytes per input value (2 for uint16).

        Returns:
            The bound.
        """
        pixels = self.chunk_size * bands * self.crop_size**2
        padded = self.chunk_size * bands * (self.crop_size + 2) ** 2
        return pixels * itemsize + pixels * 4 + (3 * padded * 4 if self.blur else 0)

    def extra_repr(self) -> str:
        """Return the settings for ``repr``.

        Returns:
            A one-line summary.
        """
        return (
            f'crop_size={self.crop_size}, train={self.train_mode}, '
            f'scale={self.scale}, insert_zero_b10={self.insert_zero_b10}, '
            f'coordinate_jitter={self.coordinate_jitter}, '
            f'chunk_size={self.chunk_size}'
            + (
                ''
                if self.mean is None
                else f', mean={list(self.mean)}, std={list(self.std or ())}'
            )
        )
