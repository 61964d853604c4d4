import pathlib

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from satclip_checkpoints import torchgeo_model, write_official

from satclip_tg import build_location_encoder
from satclip_tg.cli import main
from satclip_tg.embedding import (
    GridSpec,
    RowFactorization,
    embed_grid,
    grid,
    plain_grid_embeddings,
    write_grid_geotiff,
)
from satclip_tg.pretrained import load_location_encoder


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp('encoder')
    return write_official(folder / 'satclip-l10.ckpt', torchgeo_model(10, seed=7))


@pytest.fixture(scope='module')
def encoder(checkpoint):
    return load_location_encoder(checkpoint)


def centres(spec: GridSpec) -> torch.Tensor:
    lat, lon = torch.meshgrid(spec.latitudes(), spec.longitudes(), indexing='ij')
    return torch.stack([lon.reshape(-1), lat.reshape(-1)], dim=1)


def direct(encoder, spec: GridSpec) -> np.ndarray:
    with torch.no_grad():
        values = encoder(centres(spec)).float().numpy()
    return values.reshape(spec.height, spec.width, -1)


def test_grid_spec():
    spec = GridSpec.from_bbox((-10, 40, 10, 50), 0.5)
    assert (spec.width, spec.height) == (40, 20)
    assert spec.longitudes()[0] == -9.75 and spec.longitudes()[-1] == 9.75
    assert spec.latitudes()[0] == 49.75 and spec.latitudes()[-1] == 40.25
    transform = spec.transform()
    assert (transform.c, transform.f, transform.a, transform.e) == (-10, 50, 0.5, -0.5)
    world = GridSpec.from_bbox((-180, -90, 180, 90), 0.05)
    assert (world.width, world.height) == (7200, 3600)
    with pytest.raises(ValueError, match='whole number'):
        GridSpec.from_bbox((0, 0, 1, 1), 0.3)
    with pytest.raises(ValueError, match='antimeridian'):
        GridSpec.from_bbox((170, 0, -170, 10), 1)
    with pytest.raises(ValueError, match='MINLON'):
        GridSpec.from_bbox((0, 0, 10, 95), 1)
    with pytest.raises(ValueError, match='positive'):
        GridSpec.from_bbox((0, 0, 10, 10), 0)


@pytest.mark.parametrize('degrees', [10, 40])
def test_row_factorization_is_exact(degrees):
    model = torchgeo_model(degrees, seed=degrees, capacity=64, embed_dim=16)
    encoder = load_location_encoder(model.state_dict(), dtype=torch.float64)
    spec = GridSpec.from_bbox((-180, -90, 180, 90), 12)
    factorization = RowFactorization(encoder)
    rows = factorization.row_coefficients(spec.latitudes())
    columns = factorization.column_terms(spec.longitudes())
    assert rows.shape == (spec.height, 2 * degrees - 1, 64)
    assert columns.shape == (spec.width, 2 * degrees - 1)
    got = factorization.embed(rows, columns)
    with torch.no_grad():
        plain = encoder(centres(spec)).reshape(spec.height, spec.width, -1)
        reference = model(centres(spec)).reshape(spec.height, spec.width, -1)
    assert (got - plain).abs().max() < 1e-10
    # Rows within 0.05 degrees of the poles are left out: TorchGeo clamps there.
    assert (got - reference).abs().max() < 1e-8
    # float32: within 2e-4 of the float64 result.
    single = load_location_encoder(model.state_dict())
    factorization = RowFactorization(single)
    got32 = factorization.embed(
        factorization.row_coefficients(spec.latitudes()),
        factorization.column_terms(spec.longitudes()),
    )
    assert got32.dtype == torch.float32
    assert (got32.double() - plain).abs().max() < 2e-4


def test_row_factorization_orthonormal_convention():
    torch.manual_seed(0)
    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=8,
        positional_encoding_args={'legendre_polys': 6, 'convention': 'orthonormal'},
        network_args={'hidden_dim': 16},
    ).double()
    encoder.eval()
    spec = GridSpec.from_bbox((-30, -60, 30, 80), 5)
    factorization = RowFactorization(encoder)
    got = factorization.embed(
        factorization.row_coefficients(spec.latitudes()),
        factorization.column_terms(spec.longitudes()),
    )
    with torch.no_grad():
        plain = encoder(centres(spec)).reshape(spec.height, spec.width, -1)
    assert (got - plain).abs().max() < 1e-10


def test_factorization_needs_the_satclip_architecture():
    encoder = build_location_encoder('wrap', 'siren', embed_dim=4).eval()
    assert not grid.supports_row_factorization(encoder)
    with pytest.raises(TypeError, match='plain_grid_embeddings'):
        RowFactorization(encoder)
    spec = GridSpec.from_bbox((0, 0, 4, 3), 1)
    values = embed_grid(encoder, spec)
    np.testing.assert_allclose(values, direct(encoder, spec), atol=1e-6)


def test_embed_grid_matches_plain(encoder):
    spec = GridSpec.from_bbox((-20, -10, 20, 30), 2)
    factorised = embed_grid(encoder, spec)
    plain = embed_grid(encoder, spec, factorize=False)
    assert factorised.shape == (20, 20, 256) and factorised.dtype == np.float32
    np.testing.assert_allclose(factorised, plain, atol=2e-5)
    reference = plain_grid_embeddings(encoder, spec.longitudes(), spec.latitudes())
    np.testing.assert_allclose(plain, reference.numpy(), atol=0)


def test_geotiff_reads_back(tmp_path, encoder):
    spec = GridSpec.from_bbox((-40, -20, 40, 30), 2.5)  # 32 x 20 cells
    path = tmp_path / 'emb.tif'
    # Small tiles and chunks: several row bands and column windows.
    result = write_grid_geotiff(
        encoder, spec, path, tile_size=16, chunk_cells=256, compress='zstd'
    )
    assert result.factorized and result.bands == 256 and result.preview is None
    with rasterio.open(path) as dataset:
        assert dataset.crs.to_epsg() == 4326
        assert dataset.transform == spec.transform()
        assert (dataset.width, dataset.height, dataset.count) == (32, 20, 256)
        assert dataset.dtypes[0] == 'float32'
        assert dataset.descriptions[0] == 'emb_000'
        assert dataset.descriptions[-1] == 'emb_255'
        assert dataset.profile['tiled'] and dataset.block_shapes[0] == (16, 16)
        assert dataset.compression.name.lower() == 'zstd'
        values = dataset.read()
    expected = direct(encoder, spec).transpose(2, 0, 1)
    np.testing.assert_allclose(values, expected, atol=2e-5)
    assert list(tmp_path.iterdir()) == [path]


def test_cli_with_preview_and_overwrite(tmp_path, checkpoint, encoder, capsys):
    output = tmp_path / 'out' / 'world.tif'
    args = [
        'embed-grid',
        '--encoder',
        str(checkpoint),
        '--bbox',
        '-180',
        '-90',
        '180',
        '90',
        '--resolution',
        '10',
        '--output',
        str(output),
        '--pca',
        '3',
        '--device',
        'cpu',
    ]
    assert main(args) == 0
    summary = capsys.readouterr().out
    assert '36 x 18 cells' in summary and 'row-factorised' in summary
    preview = output.with_suffix('.png')
    with Image.open(preview) as image:
        assert image.size == (36, 18) and image.mode == 'RGB'
        pixels = np.asarray(image)
    assert pixels.std() > 0
    with rasterio.open(output) as dataset:
        assert dataset.count == 256
        assert dataset.tags()['satclip_tg_encoder'] == str(checkpoint)
        first = dataset.read(1)
    spec = GridSpec.from_bbox((-180, -90, 180, 90), 10)
    np.testing.assert_allclose(first, direct(encoder, spec)[:, :, 0], atol=2e-5)
    # Existing outputs are kept unless --overwrite.
    before = output.stat().st_mtime_ns
    assert main(args) == 1
    assert '--overwrite' in capsys.readouterr().err
    assert output.stat().st_mtime_ns == before
    assert main([*args, '--overwrite', '--quiet', '--no-factorization']) == 0
    with rasterio.open(output) as dataset:
        np.testing.assert_allclose(dataset.read(1), first, atol=2e-5)
    assert sorted(p.name for p in output.parent.iterdir()) == [
        'world.png',
        'world.tif',
    ]


def test_cli_errors(tmp_path, checkpoint, capsys):
    base = ['embed-grid', '--encoder', str(checkpoint), '--quiet']
    assert (
        main([*base, '--resolution', '0.7', '--output', str(tmp_path / 'a.tif')]) == 1
    )
    assert 'whole number' in capsys.readouterr().err
    assert main([*base, '--resolution', '10', '--output', str(tmp_path / 'a.png')]) == 1
    assert '.tif' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_nothing(tmp_path, encoder, monkeypatch):
    spec = GridSpec.from_bbox((0, 0, 64, 32), 1)
    real = grid.iter_grid_windows

    def failing(*args, **kwargs):
        for index, item in enumerate(real(*args, **kwargs)):
            if index == 2:
                raise RuntimeError('out of memory')
            yield item

    monkeypatch.setattr(grid, 'iter_grid_windows', failing)
    path = tmp_path / 'emb.tif'
    with pytest.raises(RuntimeError, match='out of memory'):
        write_grid_geotiff(
            encoder, spec, path, tile_size=16, chunk_cells=256, pca_components=3
        )
    assert list(tmp_path.iterdir()) == []
