"""The ``mosaiks`` image backbone: MOSAIKS random convolutional features.

Sources are tiny S2-100K-layout folders written with rasterio under tmp_path,
or the 12-band uint16 fixture ``tests/data/s2_100k`` (12 tiles of 32 x 32).
"""

import pathlib

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import from_origin
from torch import nn

from satclip_tg.image.mosaiks import MosaiksImageEncoder
from satclip_tg.plugins import get_registry
from satclip_tg.testing import check_image_backbone

FIXTURE = pathlib.Path(__file__).parents[1] / 'data' / 's2_100k'
BUFFERS = {'patches', 'whitening_mean', 'whitening_matrix', 'filters', 'filter_offset'}


def write_source(root: pathlib.Path, tiles: list[np.ndarray]) -> pathlib.Path:
    """Write (C, H, W) arrays as an S2-100K-layout folder of GeoTIFFs."""
    (root / 'images').mkdir(parents=True)
    rows = []
    for i, tile in enumerate(tiles):
        fn = f'tile_{i}.tif'
        with rasterio.open(
            root / 'images' / fn,
            'w',
            driver='GTiff',
            dtype=tile.dtype,
            count=tile.shape[0],
            height=tile.shape[1],
            width=tile.shape[2],
            crs='EPSG:4326',
            transform=from_origin(i, 10.0, 0.1, 0.1),
        ) as dst:
            dst.write(tile)
        rows.append({'fn': fn, 'lon': float(i), 'lat': 10.0})
    pd.DataFrame(rows).to_csv(root / 'index.csv', index=False)
    return root


def random_tiles(
    n: int, bands: int, size: int = 8, seed: int = 0, dtype: str = 'uint8'
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (bands, size, size)).astype(dtype) for _ in range(n)]


def all_patches(
    tiles: list[np.ndarray], kernel_size: int, scale: float
) -> torch.Tensor:
    """Every k x k patch of the tiles, as (N, C k^2) float64 rows."""
    images = torch.from_numpy(np.stack(tiles).astype(np.float64)) / scale
    unfolded = F.unfold(images, kernel_size)  # (T, C k^2, L)
    return unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])


@pytest.fixture
def rgb_source(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_source(tmp_path / 'rgb', random_tiles(4, 3))


def mosaiks(**kwargs) -> MosaiksImageEncoder:
    args = {'in_channels': 3, 'num_outputs': 4, 'num_filters': 16, **kwargs}
    return MosaiksImageEncoder(**args)


# --- registration and the conformance kit ----------------------------------
MOSAIKS = get_registry().get('image_backbone', 'mosaiks').factory


def test_registered_as_mosaiks() -> None:
    assert MOSAIKS is MosaiksImageEncoder
    assert MosaiksImageEncoder.training_free


@pytest.mark.parametrize('in_channels', [3, 13])
def test_conformance_kit_gaussian(in_channels: int) -> None:
    check_image_backbone(
        MOSAIKS, in_channels=in_channels, backbone_args={'num_filters': 16}
    )


def test_conformance_kit_with_patches(rgb_source: pathlib.Path) -> None:
    check_image_backbone(
        MOSAIKS,
        in_channels=3,
        image_size=16,
        backbone_args={'num_filters': 16, 'patches_from': str(rgb_source)},
    )


def test_a_learnt_backbone_may_not_be_buffers_only() -> None:
    class Buffers(nn.Module):
        def __init__(self, in_channels, num_outputs, weights=None, freeze=True):
            super().__init__()
            self.register_buffer('filters', torch.ones(3))
            self.projection = nn.Linear(in_channels, num_outputs)

        def forward(self, images):
            return self.projection(images.mean(dim=(2, 3)))

    with pytest.raises(AssertionError, match='every parameter trains'):
        check_image_backbone(Buffers)


# --- determinism ---------------------------------------------------------------
def test_same_seed_gives_bit_identical_filters() -> None:
    args = {'in_channels': 12, 'patches_from': FIXTURE, 'scale': 10000.0}
    first, second = mosaiks(**args, seed=3), mosaiks(**args, seed=3)
    for name in BUFFERS:
        assert torch.equal(first.get_buffer(name), second.get_buffer(name)), name
    images = torch.rand(2, 12, 32, 32) * 0.3
    assert torch.equal(first.encode_features(images), second.encode_features(images))


def test_other_seed_gives_other_filters() -> None:
    args = {'in_channels': 12, 'patches_from': FIXTURE, 'scale': 10000.0}
    assert not torch.equal(mosaiks(**args).filters, mosaiks(**args, seed=1).filters)
    assert not torch.equal(mosaiks().filters, mosaiks(seed=1).filters)
    assert torch.equal(mosaiks(seed=5).filters, mosaiks(seed=5).filters)


def test_filters_do_not_depend_on_the_global_seed(rgb_source: pathlib.Path) -> None:
    torch.manual_seed(0)
    first = mosaiks(patches_from=rgb_source)
    torch.manual_seed(1)
    second = mosaiks(patches_from=rgb_source)
    assert torch.equal(first.filters, second.filters)


# --- any band count and image size ---------------------------------------------
@pytest.mark.parametrize('bands', [1, 3, 12, 13])
def test_any_band_count(tmp_path: pathlib.Path, bands: int) -> None:
    source = write_source(tmp_path / 'src', random_tiles(3, bands, dtype='uint16'))
    for args in ({'patches_from': source, 'scale': 255.0}, {}):
        encoder = mosaiks(in_channels=bands, num_filters=8, **args)
        images = torch.rand(2, bands, 9, 9)
        features = encoder.encode_features(images)
        assert features.shape == (2, 16)
        assert torch.isfinite(features).all()
        assert encoder(images).shape == (2, 4)


@pytest.mark.parametrize(('height', 'width'), [(3, 3), (5, 11), (40, 7)])
def test_any_image_size_from_kernel_size(height: int, width: int) -> None:
    encoder = mosaiks(kernel_size=3)
    assert encoder(torch.rand(2, 3, height, width)).shape == (2, 4)


def test_insert_zero_b10_matches_the_data_module() -> None:
    encoder = mosaiks(
        in_channels=13, patches_from=FIXTURE, scale=10000.0, insert_zero_b10=True
    )
    assert torch.equal(encoder.patches[:, 10], torch.zeros(16, 3, 3))
    assert (encoder.patches[:, [9, 11]] != 0).any()
    assert torch.isfinite(encoder.filters).all()


# --- the patches and the whitening ---------------------------------------------
def test_patches_come_from_a_constant_colour_source(tmp_path: pathlib.Path) -> None:
    colour = np.array([10, 200, 30], dtype=np.uint8)[:, None, None]
    source = write_source(tmp_path / 'src', [np.tile(colour, (1, 6, 6))] * 2)
    encoder = mosaiks(patches_from=source, scale=255.0, whiten=False)
    expected = torch.tensor([10.0, 200.0, 30.0]) / 255.0
    assert torch.allclose(
        encoder.patches, expected[None, :, None, None].expand(16, 3, 3, 3)
    )
    # Unwhitened filters are the patches at unit norm: still one constant
    # value per band.
    filters = encoder.filters
    assert torch.equal(filters, filters[:, :, :1, :1].expand_as(filters))
    assert torch.allclose(filters.flatten(1).norm(dim=1), torch.ones(16))


def test_patches_are_patches_of_the_source(tmp_path: pathlib.Path) -> None:
    tiles = random_tiles(3, 2, size=7)
    source = write_source(tmp_path / 'src', tiles)
    encoder = mosaiks(in_channels=2, patches_from=source, scale=255.0)
    candidates = all_patches(tiles, 3, 255.0).float()
    drawn = encoder.patches.flatten(1)
    distance = torch.cdist(drawn.double(), candidates.double()).min(dim=1).values
    assert distance.max() < 1e-6
    # Drawn without replacement: 16 distinct positions.
    assert len(torch.unique(drawn, dim=0)) == 16


def correlated_tiles(n: int, seed: int = 0) -> list[np.ndarray]:
    """Float tiles whose bands and neighbouring pixels are correlated."""
    rng = np.random.default_rng(seed)
    mixing = np.array([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [0.3, 0.3, 0.4]])
    tiles = []
    for _ in range(n):
        noise = rng.normal(size=(3, 13, 13))
        smooth = noise[:, :-1, :-1] + noise[:, 1:, 1:] + 0.5 * noise[:, 1:, :-1]
        tiles.append((np.einsum('ij,jhw->ihw', mixing, smooth) + 5).astype('float32'))
    return tiles


def test_whitening_makes_the_patch_covariance_near_identity(
    tmp_path: pathlib.Path,
) -> None:
    tiles = correlated_tiles(8)
    source = write_source(tmp_path / 'src', tiles)
    encoder = mosaiks(patches_from=source, whitening_epsilon=1e-8)
    patches = all_patches(tiles, 3, 1.0)  # every position: 8 x 121 < 1024 each
    raw = torch.cov(patches.T)
    assert (raw - torch.eye(27)).abs().max() > 0.5
    white = (patches - encoder.whitening_mean) @ encoder.whitening_matrix
    assert torch.allclose(white.mean(dim=0), torch.zeros(27).double(), atol=1e-8)
    assert torch.allclose(
        torch.cov(white.T), torch.eye(27, dtype=torch.float64), atol=1e-5
    )
    # Whitened unit-norm filters: each response has unit variance over the
    # source patches, so the threshold is in standard deviations.
    responses = patches.float() @ encoder.filters.flatten(1).T + encoder.filter_offset
    assert torch.allclose(responses.var(dim=0), torch.ones(16), atol=1e-3)


def test_whitening_epsilon_bounds_dead_directions() -> None:
    # The inserted B10 band is all zero: no variance. The epsilon caps the
    # whitening gain there instead of dividing by zero, and the filters give
    # the band no weight.
    encoder = mosaiks(
        in_channels=13, patches_from=FIXTURE, scale=10000.0, insert_zero_b10=True
    )
    white = encoder.whitening_matrix.reshape(13, 9, 13, 9)
    assert torch.isfinite(white).all()
    others = [band for band in range(13) if band != 10]
    assert white[10][:, others].abs().max() < 1e-9 * white.abs().max()
    assert torch.isfinite(encoder.filters).all()
    assert encoder.filters[:, 10].abs().max() < 1e-9 * encoder.filters.abs().max()


def test_features_follow_the_formula(rgb_source: pathlib.Path) -> None:
    encoder = mosaiks(patches_from=rgb_source, scale=255.0, bias=0.5)
    images = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    mean, white = encoder.whitening_mean, encoder.whitening_matrix
    unit = (encoder.patches.flatten(1).double() - mean) @ white
    unit = unit / unit.norm(dim=1, keepdim=True)
    x = F.unfold(images, 3).transpose(1, 2)  # (B, L, C k^2)
    z = ((x - mean) @ white) @ unit.T
    expected = torch.cat(
        [torch.relu(z - 0.5).mean(dim=1), torch.relu(-z - 0.5).mean(dim=1)], dim=1
    )
    actual = encoder.encode_features(images)
    assert actual.dtype == torch.float64
    assert torch.allclose(actual, expected, atol=1e-5)


# --- the public interface ------------------------------------------------------
def test_encode_features_and_forward(rgb_source: pathlib.Path) -> None:
    encoder = mosaiks(patches_from=rgb_source, scale=255.0, num_outputs=5)
    assert encoder.feature_dim == 32
    assert isinstance(encoder.projection, nn.Linear)
    assert encoder.projection.in_features == 32
    images = torch.rand(3, 3, 10, 10)
    features = encoder.encode_features(images)
    assert features.shape == (3, 32)
    assert (features >= 0).all()
    assert torch.equal(encoder(images), encoder.projection(features))


def test_gradients_reach_the_projection_and_the_images() -> None:
    encoder = mosaiks()
    images = torch.rand(2, 3, 8, 8, requires_grad=True)
    encoder(images).square().sum().backward()
    assert encoder.projection.weight.grad is not None
    assert images.grad is not None and torch.isfinite(images.grad).all()
    # The in-place ReLUs give the same gradient as the plain formula.
    reference = images.detach().clone().requires_grad_(True)
    z = F.conv2d(reference, encoder.filters, encoder.filter_offset)
    features = torch.cat(
        [torch.relu(z - 1).mean(dim=(2, 3)), torch.relu(-z - 1).mean(dim=(2, 3))], 1
    )
    encoder.projection(features).square().sum().backward()
    assert torch.allclose(images.grad, reference.grad, atol=1e-6)


def test_only_the_projection_trains() -> None:
    encoder = mosaiks()
    assert {name for name, _ in encoder.named_parameters()} == {
        'projection.weight',
        'projection.bias',
    }
    assert {name for name, _ in encoder.named_buffers()} == BUFFERS


def test_buffers_in_state_dict_and_round_trip(
    rgb_source: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    encoder = mosaiks(patches_from=rgb_source, scale=255.0).eval()
    state = encoder.state_dict()
    assert set(state) == BUFFERS | {'projection.weight', 'projection.bias'}
    images = torch.rand(2, 3, 12, 12)
    expected = encoder(images)

    fresh = mosaiks(seed=9)  # Gaussian filters, another seed
    assert not torch.equal(fresh(images), expected)
    fresh.load_state_dict(torch.load(_save(state, tmp_path / 'a.pt')))
    assert torch.equal(fresh(images), expected)

    # weights=: a plain state dict, or a Lightning checkpoint of the task.
    plain = mosaiks(weights=_save(state, tmp_path / 'plain.pt'))
    assert torch.equal(plain(images), expected)
    lightning = {
        'epoch': 3,
        'state_dict': {
            **{f'image_encoder.{key}': value for key, value in state.items()},
            'location_encoder.network.weight': torch.zeros(2, 2),
            'logit_scale': torch.tensor(2.6),
        },
    }
    loaded = mosaiks(weights=str(_save(lightning, tmp_path / 'task.ckpt')))
    assert torch.equal(loaded(images), expected)


def _save(obj: object, path: pathlib.Path) -> pathlib.Path:
    torch.save(obj, path)
    return path


def test_in_the_pretraining_task(rgb_source: pathlib.Path) -> None:
    from satclip_tg.tasks import SatCLIPTask

    task = SatCLIPTask(
        model='mosaiks',
        in_channels=3,
        embed_dim=8,
        positional_encoding_args={'legendre_polys': 4},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
        model_args={'num_filters': 8, 'patches_from': str(rgb_source)},
    )
    trainable = {
        name for name, p in task.image_encoder.named_parameters() if p.requires_grad
    }
    assert trainable == {'projection.weight', 'projection.bias'}
    images, points = torch.rand(4, 3, 8, 8), torch.zeros(4, 2)
    image_embeddings, _ = task(images, points)
    assert image_embeddings.shape == (4, 8)
    assert {f'image_encoder.{name}' for name in BUFFERS} <= set(task.state_dict())


# --- errors --------------------------------------------------------------------
@pytest.mark.parametrize('num_filters', [0, -3, 2.5, True])
def test_bad_num_filters(num_filters: object) -> None:
    with pytest.raises(ValueError, match='num_filters must be an integer >= 1'):
        mosaiks(num_filters=num_filters)


@pytest.mark.parametrize(
    ('option', 'value', 'match'),
    [
        ('kernel_size', 0, 'kernel_size must be'),
        ('bias', -1.0, 'bias must be a finite number >= 0'),
        ('bias', float('nan'), 'bias must be'),
        ('scale', 0.0, 'scale must be a finite number > 0'),
        ('num_source_tiles', 0, 'num_source_tiles must be'),
        ('whitening_epsilon', 0.0, 'whitening_epsilon must be'),
        ('seed', -1, 'seed must be'),
    ],
)
def test_bad_options(option: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mosaiks(**{option: value})


def test_freeze_false_is_refused_with_advice() -> None:
    with pytest.raises(ValueError, match=r'cannot be unfrozen.*freeze_backbone: true'):
        mosaiks(freeze=False)


def test_kernel_larger_than_the_source_tiles(tmp_path: pathlib.Path) -> None:
    source = write_source(tmp_path / 'src', random_tiles(2, 3, size=4))
    with pytest.raises(ValueError, match=r'4x4 pixels, smaller than kernel_size=5'):
        mosaiks(patches_from=source, kernel_size=5)


def test_kernel_larger_than_the_images() -> None:
    encoder = mosaiks(kernel_size=5)
    with pytest.raises(ValueError, match=r'4x9 pixels are smaller than kernel_size'):
        encoder(torch.rand(1, 3, 4, 9))


def test_images_of_the_wrong_shape_or_dtype() -> None:
    encoder = mosaiks()
    with pytest.raises(ValueError, match=r'expects \(B, 3, H, W\) images'):
        encoder(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match='floating-point images'):
        encoder(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_missing_patches_from(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match=r'has no index\.csv.*S2-100K layout'):
        mosaiks(patches_from=tmp_path / 'nowhere')


def test_band_count_mismatch_with_a_hint() -> None:
    with pytest.raises(ValueError, match='give 12 bands, but in_channels is 3'):
        mosaiks(patches_from=FIXTURE)
    with pytest.raises(ValueError, match='set insert_zero_b10: true'):
        mosaiks(in_channels=13, patches_from=FIXTURE)


def test_too_few_patches_for_the_filters(rgb_source: pathlib.Path) -> None:
    # 2 tiles of 8 x 8 give 2 x 36 patches of 3 x 3.
    with pytest.raises(ValueError, match=r'only 72 patches.*num_filters=100'):
        mosaiks(patches_from=rgb_source, num_source_tiles=2, num_filters=100)


def test_constant_source_cannot_be_whitened(tmp_path: pathlib.Path) -> None:
    source = write_source(tmp_path / 'src', [np.full((3, 5, 5), 7, np.uint8)] * 2)
    with pytest.raises(ValueError, match=r'no variance.*whiten: false'):
        mosaiks(patches_from=source)


def test_non_finite_source(tmp_path: pathlib.Path) -> None:
    tile = np.ones((3, 5, 5), np.float32)
    tile[0, 2, 2] = np.nan
    source = write_source(tmp_path / 'src', [tile])
    with pytest.raises(ValueError, match=r'tile_0\.tif has non-finite values'):
        mosaiks(patches_from=source, num_filters=4)


@pytest.mark.parametrize(
    ('weights', 'match'),
    [
        ('ResNet18_Weights.SENTINEL2_ALL_MOCO', 'no downloadable pretrained weights'),
        ('missing.ckpt', 'is not a checkpoint file'),
    ],
)
def test_bad_weights(weights: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mosaiks(weights=weights)


def test_checkpoint_that_does_not_fit(tmp_path: pathlib.Path) -> None:
    path = _save(mosaiks(num_filters=8).state_dict(), tmp_path / 'small.pt')
    with pytest.raises(ValueError, match=r'does not fit.*shape mismatches'):
        mosaiks(weights=path)
    other = _save({'model.conv1.weight': torch.zeros(1)}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='missing keys'):
        mosaiks(weights=other)
    junk = tmp_path / 'junk.pt'
    junk.write_text('not a checkpoint')
    with pytest.raises(ValueError, match='cannot read checkpoint'):
        mosaiks(weights=junk)
    _save([1, 2], tmp_path / 'list.pt')
    with pytest.raises(ValueError, match='does not hold a state dict'):
        mosaiks(weights=tmp_path / 'list.pt')
