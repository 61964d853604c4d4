"""MOSAIKS random convolutional features as an image backbone.

MOSAIKS (Rolf et al., 2021, "A generalizable and accessible approach to
machine learning with global satellite imagery", Nature Communications 12,
4392) featurises an image without any training: ``K`` random ``k x k`` patches
of the training imagery, ZCA-whitened, serve as convolution filters; the
responses pass a two-sided ReLU with a fixed threshold and are averaged over
the image, giving ``2K`` features. It is one of the baselines of the SatCLIP
paper.

`MosaiksImageEncoder` follows the backbone-factory contract of the
``satclip_tg_image_backbones`` hook and is registered as ``mosaiks``. Its
filters and whitening are non-trainable buffers; only the linear projection
to ``num_outputs`` trains.
"""

import math
import os
import pathlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import read_state_dict

__all__ = ['PATCHES_PER_TILE', 'MosaiksImageEncoder']

#: Patch positions drawn per source tile. The whitening statistics use all of
#: them and the filters are drawn among them, so a few tiles of 256 x 256
#: pixels do not dominate, and memory stays bounded for any tile size.
PATCHES_PER_TILE = 1024

# Prefix of the image encoder's keys in a satclip-tg Lightning checkpoint.
_CHECKPOINT_PREFIX = 'image_encoder.'

# Index of Sentinel-2 B10 in the 13-band order, where `S2100KDataModule`
# inserts its all-zero band. Not imported from the data module, which would
# pull in Kornia and Lightning for one constant.
_B10_INDEX = 10

# Norm below which a whitened patch counts as zero: such a patch equals the
# mean patch and has no direction to normalise.
_TINY_NORM = 1e-12


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return value


def _check_float(name: str, value: object, *, positive: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (value <= 0 if positive else value < 0)
    ):
        bound = '> 0' if positive else '>= 0'
        raise ValueError(f'{name} must be a finite number {bound}, got {value!r}')
    return float(value)


class MosaiksImageEncoder(nn.Module):
    r"""MOSAIKS random convolutional features with a trainable linear projection.

    With patches $p_1, \dots, p_K$ drawn from the source imagery, their mean
    $\mu$ and covariance $\Sigma = V \Lambda V^\top$, the ZCA whitening
    $W = V (\Lambda + \epsilon \bar\lambda I)^{-1/2} V^\top$ ($\bar\lambda$ the
    mean eigenvalue) and the whitened, unit-norm filters
    $f_j = W (p_j - \mu) / \lVert W (p_j - \mu) \rVert$, the response to the
    image patch $x$ at each position is $z_j = f_j^\top W (x - \mu)$, and the
    features are

    $$\big[\operatorname{mean} \operatorname{ReLU}(z_j - b),\;
    \operatorname{mean} \operatorname{ReLU}(-z_j - b)\big]_{j=1}^{K},$$

    means taken over the positions of the image, so ``feature_dim = 2K``.
    Since $z_j = (W f_j)^\top x - (W f_j)^\top \mu$, the whitening is folded
    into the convolution weights $W f_j$ (buffer ``filters``) and a per-filter
    offset (buffer ``filter_offset``): the forward pass is one convolution.
    Unit-norm filters give each response unit variance over the whitened
    source patches, so the threshold $b$ (``bias``) is in standard
    deviations whatever the band count and kernel size.

    Without ``patches_from`` the filters are seeded Gaussian random vectors
    of unit norm applied to the raw input, without whitening (there are no
    statistics to whiten with): the data-free fallback.

    The module is frozen by nature: its filters are drawn, not learnt, and
    are persistent buffers (saved in checkpoints, loaded by a rebuilt
    module); only `projection` has parameters. It holds no dropout or
    normalisation layers, so training and eval mode compute the same.

    Attributes:
        training_free: True: there is no ``freeze=False`` variant (see
            `satclip_tg.testing.check_image_backbone`).
        feature_dim: Size ``2K`` of the features of `encode_features`.
        projection: The trainable ``nn.Linear(feature_dim, num_outputs)``.
        threshold: The ``bias`` option (a float, not a parameter).
        patches: Buffer ``(K, C, k, k)``: the drawn patches, in the units the
            backbone sees (the Gaussian draws without ``patches_from``).
        whitening_mean: Buffer ``(C k^2,)`` float64: the mean patch (zeros
            without whitening).
        whitening_matrix: Buffer ``(C k^2, C k^2)`` float64: the ZCA matrix
            (the identity without whitening).
        filters: Buffer ``(K, C, k, k)``: the convolution weights, whitening
            folded in.
        filter_offset: Buffer ``(K,)``: the per-filter offset of the
            convolution.
    """

    training_free = True

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        weights: str | os.PathLike[str] | None = None,
        freeze: bool = True,
        *,
        num_filters: int = 512,
        kernel_size: int = 3,
        bias: float = 1.0,
        seed: int = 0,
        patches_from: str | os.PathLike[str] | None = None,
        scale: float | None = None,
        insert_zero_b10: bool = False,
        num_source_tiles: int = 256,
        whiten: bool = True,
        whitening_epsilon: float = 1e-2,
    ) -> None:
        """Draw (or load) the filters and build the projection.

        Args:
            in_channels: Number of image bands.
            num_outputs: Size of the output embedding.
            weights: ``None`` to draw the filters, or the path of a checkpoint
                holding this module's state dict (a plain state dict, or a
                satclip-tg Lightning checkpoint with the keys under
                ``image_encoder.``); its buffers and projection are loaded and
                ``patches_from`` is not read.
            freeze: Must be true: there is nothing to fine-tune.
            num_filters: Number of filters ``K``; the features have ``2K``
                entries.
            kernel_size: Side ``k`` of the square filters, in pixels.
            bias: Threshold ``b`` of the two-sided ReLU, in standard deviations
                of the whitened responses (1.0 in the paper).
            seed: Seed of the tile, patch and Gaussian filter draws: the same
                seed and source give bit-identical filters.
            patches_from: A folder in the S2-100K layout (``index.csv`` with
                columns fn, lon, lat and ``images/<fn>`` GeoTIFFs) whose tiles
                supply the filter patches and whitening statistics; ``None``
                for Gaussian filters.
            scale: Divide tile values by this before drawing patches, so that
                they match what the data module feeds the backbone (255 for
                uint8 imagery, 10000 for Sentinel-2); ``None`` for raw values.
            insert_zero_b10: Insert an all-zero band at index 10 of the tiles,
                as `S2100KDataModule` does to turn the 12 bands of S2-100K into
                the 13 of SSL4EO-S12 backbones.
            num_source_tiles: Number of random tiles patches are drawn from
                (all tiles if there are fewer); at most `PATCHES_PER_TILE`
                positions are drawn per tile.
            whiten: ZCA-whiten the patches (ignored without ``patches_from``).
            whitening_epsilon: Regularisation of the whitening, relative to
                the mean eigenvalue of the patch covariance, so that it does
                not depend on the scale of the pixel values; it keeps
                directions of (near) zero variance, such as an all-zero band,
                from being amplified.

        Raises:
            ValueError: If an option is invalid, if ``freeze`` is false, if
                ``weights`` is neither ``None`` nor a checkpoint that fits, or
                if the source tiles do not fit (band count, size smaller than
                ``kernel_size``, fewer patches than ``num_filters``,
                non-finite values, no variance to whiten).
            FileNotFoundError: If ``patches_from`` has no ``index.csv``.
        """
        super().__init__()
        if not freeze:
            raise ValueError(
                'the mosaiks backbone cannot be unfrozen: its filters are drawn '
                'from images, not learnt, and only its projection trains (as it '
                'does with freeze=True). Set freeze_backbone: true (freeze=True), '
                'or choose a learnt backbone such as resnet18 to fine-tune'
            )
        self.in_channels = _check_int('in_channels', in_channels, 1)
        self.num_outputs = _check_int('num_outputs', num_outputs, 1)
        self.num_filters = _check_int('num_filters', num_filters, 1)
        self.kernel_size = _check_int('kernel_size', kernel_size, 1)
        self.threshold = _check_float('bias', bias, positive=False)
        self.seed = _check_int('seed', seed, 0)
        self.whiten = bool(whiten)
        self.feature_dim = 2 * self.num_filters
        num_source_tiles = _check_int('num_source_tiles', num_source_tiles, 1)
        whitening_epsilon = _check_float(
            'whitening_epsilon', whitening_epsilon, positive=True
        )
        if scale is not None:
            scale = _check_float('scale', scale, positive=True)

        shape = (self.num_filters, in_channels, kernel_size, kernel_size)
        dim = in_channels * kernel_size**2
        self.patches: Tensor
        self.whitening_mean: Tensor
        self.whitening_matrix: Tensor
        self.filters: Tensor
        self.filter_offset: Tensor
        # The drawn patches and the whitening are kept to document the
        # filters; forward uses only the folded filters and filter_offset.
        self.register_buffer('patches', torch.zeros(shape))
        self.register_buffer('whitening_mean', torch.zeros(dim, dtype=torch.float64))
        self.register_buffer('whitening_matrix', torch.eye(dim, dtype=torch.float64))
        self.register_buffer('filters', torch.zeros(shape))
        self.register_buffer('filter_offset', torch.zeros(self.num_filters))
        self.projection = nn.Linear(self.feature_dim, num_outputs)

        if weights is not None:
            self._load_checkpoint(weights)
            return
        generator = torch.Generator().manual_seed(self.seed)
        if patches_from is None:
            patches = torch.randn(
                self.num_filters, dim, generator=generator, dtype=torch.float64
            )
            self._set_filters(patches, None, None)
            return
        patches, mean, covariance = _draw_source_patches(
            pathlib.Path(patches_from).expanduser(),
            in_channels=in_channels,
            kernel_size=kernel_size,
            num_filters=self.num_filters,
            num_source_tiles=num_source_tiles,
            scale=scale,
            insert_zero_b10=insert_zero_b10,
            generator=generator,
        )
        if self.whiten:
            self._set_filters(
                patches, mean, _zca_matrix(covariance, whitening_epsilon, patches_from)
            )
        else:
            self._set_filters(patches, None, None)

    def _set_filters(
        self, patches: Tensor, mean: Tensor | None, whitening: Tensor | None
    ) -> None:
        """Fold the whitening into the filters and store the buffers.

        Args:
            patches: ``(K, C k^2)`` float64 patches.
            mean: ``(C k^2,)`` float64 mean patch, or ``None`` not to whiten.
            whitening: ``(C k^2, C k^2)`` symmetric ZCA matrix, or ``None``.
        """
        if mean is None or whitening is None:
            white = patches
        else:
            white = (patches - mean) @ whitening
        unit = white / white.norm(dim=1, keepdim=True).clamp_min(_TINY_NORM)
        if mean is None or whitening is None:
            weight, offset = unit, torch.zeros(len(unit), dtype=torch.float64)
        else:
            # z = f^T W (x - mu) = (W f)^T x - (W f)^T mu, W symmetric.
            weight = unit @ whitening
            offset = -(weight @ mean)
            self.whitening_mean.copy_(mean)
            self.whitening_matrix.copy_(whitening)
        self.patches.copy_(patches.reshape(self.patches.shape))
        self.filters.copy_(weight.reshape(self.filters.shape))
        self.filter_offset.copy_(offset)

    def _load_checkpoint(self, weights: str | os.PathLike[str]) -> None:
        """Load buffers and projection from a checkpoint.

        Args:
            weights: Path of a state dict or satclip-tg Lightning checkpoint.

        Raises:
            ValueError: If the path is not a file, does not hold a state dict,
                or its keys or shapes do not fit this module.
        """
        path = pathlib.Path(weights).expanduser()
        if not path.is_file():
            raise ValueError(
                f'mosaiks weights {str(weights)!r} is not a checkpoint file; the '
                f'mosaiks backbone has no downloadable pretrained weights: use '
                f'null to draw its filters (with backbone_args patches_from), or '
                f'the path of a checkpoint holding its state dict'
            )
        state = read_state_dict(path, prefixes=(_CHECKPOINT_PREFIX,))
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(
            f'{key} {tuple(state[key].shape)} != {tuple(own[key].shape)}'
            for key in set(own) & set(state)
            if state[key].shape != own[key].shape
        )
        if missing or unexpected or wrong:
            raise ValueError(
                f'checkpoint {path} does not fit a mosaiks backbone with '
                f'in_channels={self.in_channels}, num_outputs={self.num_outputs}, '
                f'num_filters={self.num_filters}, kernel_size={self.kernel_size}: '
                f'missing keys {missing[:5]}, unexpected keys {unexpected[:5]}, '
                f'shape mismatches {wrong[:5]}'
            )
        self.load_state_dict(state)

    def encode_features(self, images: Tensor) -> Tensor:
        """Compute the pooled MOSAIKS features (before the projection).

        Args:
            images: ``(B, in_channels, H, W)`` floating-point images with
                ``H, W >= kernel_size``, scaled as the filters were drawn.

        Returns:
            ``(B, feature_dim)`` features: the ``K`` positive-side means, then
            the ``K`` negative-side means.

        Raises:
            ValueError: If the images have the wrong shape or dtype.
        """
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f'mosaiks expects (B, {self.in_channels}, H, W) images, got shape '
                f'{tuple(images.shape)}'
            )
        if min(images.shape[-2:]) < self.kernel_size:
            raise ValueError(
                f'images of {images.shape[-2]}x{images.shape[-1]} pixels are '
                f'smaller than kernel_size={self.kernel_size}'
            )
        if not images.is_floating_point():
            raise ValueError(
                f'mosaiks expects floating-point images, got {images.dtype}; '
                f'scale them as the filters were drawn (see the scale option)'
            )
        response = F.conv2d(
            images,
            self.filters.to(images.dtype),
            self.filter_offset.to(images.dtype),
        )
        # One conv output plus one temporary at a time: the negative side
        # reuses the response's memory. relu_ and neg_/sub_ keep autograd
        # intact (relu's backward needs only its result; the others none).
        positive = (response - self.threshold).relu_().mean(dim=(2, 3))
        negative = response.neg_().sub_(self.threshold).relu_().mean(dim=(2, 3))
        return torch.cat([positive, negative], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        """Embed images: the projection of `encode_features`.

        Args:
            images: ``(B, in_channels, H, W)`` images.

        Returns:
            ``(B, num_outputs)`` embeddings.
        """
        out: Tensor = self.projection(self.encode_features(images))
        return out

    def extra_repr(self) -> str:
        """Return the settings for ``repr``.

        Returns:
            A one-line summary.
        """
        return (
            f'in_channels={self.in_channels}, num_filters={self.num_filters}, '
            f'kernel_size={self.kernel_size}, bias={self.threshold}, '
            f'seed={self.seed}, whiten={self.whiten}'
        )


def _zca_matrix(
    covariance: Tensor, epsilon: float, source: str | os.PathLike[str]
) -> Tensor:
    """Compute the ZCA whitening matrix of a covariance, in float64.

    Args:
        covariance: ``(d, d)`` float64 covariance of the patches.
        epsilon: Regularisation, relative to the mean eigenvalue.
        source: The patch source, for the error message.

    Returns:
        The symmetric ``(d, d)`` matrix ``V (L + eps I)^(-1/2) V^T``.

    Raises:
        ValueError: If the patches have no variance.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    # Round-off can make eigenvalues of a singular covariance slightly negative.
    eigenvalues = eigenvalues.clamp_min(0)
    mean_eigenvalue = float(eigenvalues.mean())
    if not mean_eigenvalue > 0:
        raise ValueError(
            f'the patches drawn from {source} have no variance (constant '
            f'tiles?), so they cannot be whitened; set whiten: false'
        )
    inverse_sqrt = (eigenvalues + epsilon * mean_eigenvalue).rsqrt()
    matrix: Tensor = (eigenvectors * inverse_sqrt) @ eigenvectors.T
    return matrix


def _draw_source_patches(
    root: pathlib.Path,
    *,
    in_channels: int,
    kernel_size: int,
    num_filters: int,
    num_source_tiles: int,
    scale: float | None,
    insert_zero_b10: bool,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw filter patches and patch statistics from S2-100K-layout tiles.

    Args:
        root: The folder holding ``index.csv`` and ``images/``.
        in_channels: Number of bands the backbone takes.
        kernel_size: Side of the patches.
        num_filters: Number of filter patches to draw.
        num_source_tiles: Number of random tiles to read.
        scale: Divide tile values by this, or ``None``.
        insert_zero_b10: Insert an all-zero band at index 10.
        generator: The seeded generator of all draws.

    Returns:
        ``(patches, mean, covariance)`` in float64: ``(K, C k^2)`` filter
        patches, and the mean ``(C k^2,)`` and covariance ``(C k^2, C k^2)``
        of all patches drawn.

    Raises:
        FileNotFoundError: If ``root/index.csv`` is missing.
        ValueError: If the tiles do not fit (see `MosaiksImageEncoder`).
    """
    from ..datasets.s2_100k import SatCLIPImageryDataset

    if not (root / 'index.csv').is_file():
        raise FileNotFoundError(
            f'patches_from={str(root)!r} has no index.csv: it must be a folder in '
            f'the S2-100K layout (index.csv with columns fn, lon, lat and one '
            f'GeoTIFF per row in images/<fn>), e.g. the one `satclip-tg demo` '
            f'builds'
        )
    dataset = SatCLIPImageryDataset(root, skip_unreadable=False)
    bands, height, width = dataset.image_shape
    if insert_zero_b10:
        if bands < _B10_INDEX:
            raise ValueError(
                f'insert_zero_b10 needs Sentinel-2 tiles with 12 bands, but the '
                f'tiles in {root} have {bands}'
            )
        bands += 1
    if bands != in_channels:
        hint = (
            '; set insert_zero_b10: true (as the data module does for S2-100K)'
            if bands == 12 and in_channels == 13 and not insert_zero_b10
            else ''
        )
        raise ValueError(
            f'the tiles in {root} give {bands} bands, but in_channels is '
            f'{in_channels}{hint}'
        )
    if min(height, width) < kernel_size:
        raise ValueError(
            f'the tiles in {root} are {height}x{width} pixels, smaller than '
            f'kernel_size={kernel_size}'
        )
    rows, cols = height - kernel_size + 1, width - kernel_size + 1
    per_tile = min(rows * cols, PATCHES_PER_TILE)
    tiles = torch.randperm(len(dataset), generator=generator)[:num_source_tiles]
    total = len(tiles) * per_tile
    if total < num_filters:
        raise ValueError(
            f'{len(tiles)} tile(s) of {root} give only {total} patches of '
            f'{kernel_size}x{kernel_size} pixels, fewer than num_filters='
            f'{num_filters}; lower num_filters or add tiles'
        )
    # Global indices (tile slot * per_tile + position slot) of the filters.
    chosen = torch.randperm(total, generator=generator)[:num_filters]
    dim = in_channels * kernel_size**2
    filters = torch.empty(num_filters, dim, dtype=torch.float64)
    offsets = torch.arange(kernel_size)
    shift: Tensor | None = None
    total_sum = torch.zeros(dim, dtype=torch.float64)
    total_outer = torch.zeros(dim, dim, dtype=torch.float64)
    for slot, index in enumerate(tiles.tolist()):
        sample = dataset[index]
        assert sample is not None  # unreadable tiles raise, naming the file
        image = sample['image'].double()
        if scale is not None:
            image = image / scale
        if insert_zero_b10:
            zeros = image.new_zeros((1, height, width))
            image = torch.cat([image[:_B10_INDEX], zeros, image[_B10_INDEX:]])
        positions = torch.randperm(rows * cols, generator=generator)[:per_tile]
        top = (positions // cols)[:, None, None] + offsets[None, :, None]
        left = (positions % cols)[:, None, None] + offsets[None, None, :]
        # (C, P, k, k) -> (P, C k^2), the layout of conv2d weights.
        patches = image[:, top, left].transpose(0, 1).reshape(per_tile, dim)
        if not bool(torch.isfinite(patches).all()):
            raise ValueError(
                f'tile {dataset.files[index]} has non-finite values (NaN nodata?); '
                f'mosaiks needs finite pixel values'
            )
        # Accumulating around a shift (the first tile's mean) keeps the
        # covariance accurate for raw values far from zero.
        if shift is None:
            shift = patches.mean(dim=0)
        centred = patches - shift
        total_sum += centred.sum(dim=0)
        total_outer += centred.T @ centred
        start = slot * per_tile
        here = ((chosen >= start) & (chosen < start + per_tile)).nonzero().flatten()
        filters[here] = patches[chosen[here] - start]
    assert shift is not None  # at least one tile was read
    centred_mean = total_sum / total
    covariance = (total_outer - total * torch.outer(centred_mean, centred_mean)) / max(
        total - 1, 1
    )
    return filters, shift + centred_mean, covariance
