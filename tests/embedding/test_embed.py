import json
import pathlib

import geopandas
import numpy as np
import pandas as pd
import pytest
import torch
from satclip_checkpoints import random_points, torchgeo_model, write_official
from shapely.geometry import Point, Polygon

from satclip_tg import build_location_encoder
from satclip_tg.cli import main
from satclip_tg.embedding import embed_points, points_io, read_points
from satclip_tg.pretrained import load_location_encoder

POINTS = pd.DataFrame(
    {
        'site': ['zurich', 'sf', 'nairobi', 'pole', 'dateline'],
        'lon': [8.54, -122.42, 36.82, 0.0, 180.0],
        'lat': [47.37, 37.77, -1.29, 90.0, -45.0],
        'value': [1.5, 2.5, 3.5, 4.5, 5.5],
    }
)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp('encoder')
    return write_official(folder / 'satclip-resnet18-l10.ckpt', torchgeo_model(10))


@pytest.fixture(scope='module')
def encoder(checkpoint):
    return load_location_encoder(checkpoint)


def direct(encoder, lon, lat) -> np.ndarray:
    coords = torch.tensor(np.stack([lon, lat], axis=1), dtype=torch.float64)
    with torch.no_grad():
        return encoder(coords).float().numpy()


def run(*args, quiet: bool = True) -> int:
    return main(['embed', *(['--quiet'] if quiet else []), *[str(a) for a in args]])


# ------------------------------------------------------------------ engine


def test_embed_points_matches_the_encoder(encoder):
    coords = random_points(1000, seed=4)
    with torch.no_grad():
        expected = encoder(coords).numpy()
    for batch in (1000, 333, 64):
        got = embed_points(encoder, coords, batch_size=batch)
        assert got.dtype == np.float32 and got.shape == (1000, 256)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    assert embed_points(encoder, coords[:0]).shape == (0, 256)
    with pytest.raises(ValueError, match='1 of 2 coordinate rows'):
        embed_points(encoder, [[0.0, 0.0], [0.0, 95.0]])


def test_embed_points_float64_and_other_encoders(checkpoint):
    coords = random_points(300, seed=5)
    encoder64 = load_location_encoder(checkpoint, dtype=torch.float64)
    with torch.no_grad():
        expected = encoder64(coords)
    got = embed_points(encoder64, coords, batch_size=128)
    np.testing.assert_allclose(got, expected.float().numpy(), rtol=0, atol=1e-7)
    torch.manual_seed(0)
    other = build_location_encoder(
        'wrap', 'fcnet', embed_dim=8, network_args={'hidden_dim': 16}
    ).eval()
    with torch.no_grad():
        expected = other(coords.float()).numpy()
    np.testing.assert_allclose(
        embed_points(other, coords.numpy(), batch_size=100), expected, atol=1e-6
    )


def test_siren_forward_equals_the_module(encoder):
    features = torch.randn(70, 100)
    scratch: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        expected = encoder.network(features)
        assert torch.allclose(encoder.network.forward_into(features), expected)
        got = encoder.network.forward_into(features, scratch=scratch)
    assert torch.allclose(got, expected)


# ---------------------------------------------------------- formats and CLI


def test_csv_to_parquet_keeps_columns(tmp_path, checkpoint, encoder, capsys):
    source = tmp_path / 'points.csv'
    POINTS.to_csv(source, index=False)
    output = tmp_path / 'out.parquet'
    assert (
        run(
            '--encoder',
            checkpoint,
            '--input',
            source,
            '--output',
            output,
            '--device',
            'cpu',
            '--batch-size',
            2,
            quiet=False,
        )
        == 0
    )
    summary = capsys.readouterr().out
    assert 'embedded 5 points' in summary and 'emb_000..emb_255' in summary
    table = pd.read_parquet(output)
    assert list(table.columns[:4]) == ['site', 'lon', 'lat', 'value']
    assert table.columns[4] == 'emb_000' and table.columns[-1] == 'emb_255'
    assert table.shape == (5, 4 + 256)
    assert (table.dtypes.iloc[4:] == np.float32).all()
    pd.testing.assert_frame_equal(table.iloc[:, :4], POINTS)
    expected = direct(encoder, POINTS['lon'], POINTS['lat'])
    np.testing.assert_allclose(table.iloc[:, 4:].to_numpy(), expected, atol=2e-6)
    assert oct(output.stat().st_mode & 0o777) != oct(0o600)


def test_parquet_to_csv_and_npy(tmp_path, checkpoint, encoder):
    source = tmp_path / 'points.parquet'
    POINTS.rename(columns={'lon': 'Longitude', 'lat': 'Latitude'}).to_parquet(source)
    expected = direct(encoder, POINTS['lon'], POINTS['lat'])
    assert (
        run(
            '--encoder', checkpoint, '--input', source, '--output', tmp_path / 'out.csv'
        )
        == 0
    )
    table = pd.read_csv(tmp_path / 'out.csv')
    assert list(table.columns[:4]) == ['site', 'Longitude', 'Latitude', 'value']
    np.testing.assert_allclose(table.iloc[:, 4:].to_numpy(), expected, atol=1e-6)
    assert (
        run(
            '--encoder', checkpoint, '--input', source, '--output', tmp_path / 'out.npy'
        )
        == 0
    )
    array = np.load(tmp_path / 'out.npy')
    assert array.dtype == np.float32 and array.shape == (5, 256)
    np.testing.assert_allclose(array, expected, atol=2e-6)


def test_column_options(tmp_path, checkpoint, encoder, capsys):
    source = tmp_path / 'points.csv'
    POINTS.rename(columns={'lon': 'x_deg', 'lat': 'y_deg'}).to_csv(source, index=False)
    assert (
        run('--encoder', checkpoint, '--input', source, '--output', tmp_path / 'a.npy')
        == 1
    )
    assert '--lon-col' in capsys.readouterr().err
    assert (
        run(
            '--encoder',
            checkpoint,
            '--input',
            source,
            '--output',
            tmp_path / 'a.npy',
            '--lon-col',
            'x_deg',
            '--lat-col',
            'nope',
        )
        == 1
    )
    assert "'nope' is not a column" in capsys.readouterr().err
    assert (
        run(
            '--encoder',
            checkpoint,
            '--input',
            source,
            '--output',
            tmp_path / 'a.parquet',
            '--lon-col',
            'x_deg',
            '--lat-col',
            'y_deg',
            '--column-prefix',
            'satclip_',
        )
        == 0
    )
    table = pd.read_parquet(tmp_path / 'a.parquet')
    assert 'satclip_000' in table.columns
    # A prefix that collides with an input column is refused before any work.
    assert (
        run(
            '--encoder',
            checkpoint,
            '--input',
            tmp_path / 'a.parquet',
            '--output',
            tmp_path / 'b.parquet',
            '--lon-col',
            'x_deg',
            '--lat-col',
            'y_deg',
            '--column-prefix',
            'satclip_',
        )
        == 1
    )
    assert 'column-prefix' in capsys.readouterr().err
    assert not (tmp_path / 'b.parquet').exists()


def test_geojson_points(tmp_path, checkpoint, encoder):
    frame = geopandas.GeoDataFrame(
        POINTS[['site', 'value']],
        geometry=[
            Point(x, y) for x, y in zip(POINTS['lon'], POINTS['lat'], strict=True)
        ],
        crs='EPSG:4326',
    )
    source = tmp_path / 'points.geojson'
    frame.to_file(source, driver='GeoJSON')
    output = tmp_path / 'out.parquet'
    assert run('--encoder', checkpoint, '--input', source, '--output', output) == 0
    table = geopandas.read_parquet(output)
    assert list(table.columns[:3]) == ['site', 'value', 'geometry']
    assert table.crs.equals('EPSG:4326')
    expected = direct(encoder, POINTS['lon'], POINTS['lat'])
    np.testing.assert_allclose(
        table[[f'emb_{i:03d}' for i in range(256)]].to_numpy(), expected, atol=2e-6
    )
    assert (
        run(
            '--encoder', checkpoint, '--input', source, '--output', tmp_path / 'out.csv'
        )
        == 0
    )
    text = pd.read_csv(tmp_path / 'out.csv')
    assert text['geometry'][0].startswith('POINT')


def test_gpkg_polygons_use_centroids_and_are_reprojected(
    tmp_path, checkpoint, encoder, capsys
):
    square = Polygon([(10, 40), (12, 40), (12, 42), (10, 42)])
    frame = geopandas.GeoDataFrame(
        {'name': ['square', 'point']},
        geometry=[square, Point(-3.7, 40.4)],
        crs='EPSG:4326',
    ).to_crs('EPSG:3857')
    source = tmp_path / 'shapes.gpkg'
    frame.to_file(source, driver='GPKG')
    output = tmp_path / 'out.npy'
    assert run('--encoder', checkpoint, '--input', source, '--output', output) == 0
    assert 'not points (Polygon); their centroids' in capsys.readouterr().err
    centroid = frame.geometry.iloc[:1].centroid.to_crs('EPSG:4326').iloc[0]
    expected = direct(encoder, [centroid.x, -3.7], [centroid.y, 40.4])
    np.testing.assert_allclose(np.load(output), expected, atol=1e-5)


def test_bad_rows_are_reported_or_nan(tmp_path, checkpoint, encoder, capsys):
    frame = pd.DataFrame(
        {
            'id': range(8),
            'lon': ['1', '2', 'abc', '4', '', '6', '7', '190'],
            'lat': [1, 2, 3, 95, 5, 6, float('nan'), 8],
        }
    )
    source = tmp_path / 'bad.csv'
    frame.to_csv(source, index=False)
    output = tmp_path / 'out.parquet'
    args = ('--encoder', checkpoint, '--input', source, '--output', output)
    assert run(*args) == 1
    err = capsys.readouterr().err
    assert '5 of 8 rows have invalid coordinates' in err
    assert "2 (lon='abc', lat=3.0)" in err and "7 (lon='190', lat=8.0)" in err
    assert '0 (' not in err and '--on-invalid nan' in err
    assert not output.exists()
    assert run(*args, '--on-invalid', 'nan', quiet=False) == 0
    assert 'invalid rows: 5 of 8 got NaN embeddings' in capsys.readouterr().out
    table = pd.read_parquet(output)
    assert len(table) == 8 and list(table['id']) == list(range(8))
    embedded = table.iloc[:, 3:].to_numpy()
    bad = [2, 3, 4, 6, 7]
    assert np.isnan(embedded[bad]).all()
    good = [0, 1, 5]
    expected = direct(encoder, [1.0, 2.0, 6.0], [1.0, 2.0, 6.0])
    np.testing.assert_allclose(embedded[good], expected, atol=2e-6)


def test_swapped_columns_get_a_hint(tmp_path):
    table = points_io.PointTable(
        frame=pd.DataFrame({'a': [0]}),
        lon=np.array([45.0]),
        lat=np.array([120.0]),
        raw_lon=np.array([45.0], dtype=object),
        raw_lat=np.array([120.0], dtype=object),
        origin='test',
    )
    mask = points_io.invalid_rows(table.lon, table.lat)
    assert '(lat, lon)' in points_io.describe_invalid(table, mask)
    many = points_io.PointTable(
        frame=pd.DataFrame({'a': range(9)}),
        lon=np.full(9, np.nan),
        lat=np.zeros(9),
        raw_lon=np.full(9, None, dtype=object),
        raw_lat=np.zeros(9, dtype=object),
        origin='test',
    )
    message = points_io.describe_invalid(many, np.ones(9, dtype=bool), limit=3)
    assert message.startswith('9 of 9 rows') and '(6 more)' in message
    assert '3 (' not in message


def test_overwrite(tmp_path, checkpoint, capsys):
    source = tmp_path / 'points.csv'
    POINTS.to_csv(source, index=False)
    output = tmp_path / 'out.npy'
    output.write_text('keep me')
    args = ('--encoder', checkpoint, '--input', source, '--output', output)
    assert run(*args) == 1
    assert '--overwrite' in capsys.readouterr().err
    assert output.read_text() == 'keep me'
    assert run(*args, '--overwrite') == 0
    assert np.load(output).shape == (5, 256)


def test_failed_write_leaves_nothing(tmp_path, checkpoint, monkeypatch, capsys):
    source = tmp_path / 'points.csv'
    POINTS.to_csv(source, index=False)
    output = tmp_path / 'out' / 'emb.parquet'

    def broken(self, path, *args, **kwargs):
        pathlib.Path(path).write_bytes(b'PAR1 half written')
        raise OSError('disk full')

    monkeypatch.setattr(pd.DataFrame, 'to_parquet', broken)
    assert run('--encoder', checkpoint, '--input', source, '--output', output) == 1
    assert 'disk full' in capsys.readouterr().err
    assert list(output.parent.iterdir()) == []


def test_usage_errors(tmp_path, checkpoint, capsys):
    source = tmp_path / 'points.csv'
    POINTS.to_csv(source, index=False)
    assert (
        run(
            '--encoder',
            checkpoint,
            '--input',
            source,
            '--output',
            tmp_path / 'out.xlsx',
        )
        == 1
    )
    assert '.parquet, .csv, .npy' in capsys.readouterr().err
    assert (
        run(
            '--encoder',
            tmp_path / 'nope.ckpt',
            '--input',
            source,
            '--output',
            tmp_path / 'out.npy',
        )
        == 1
    )
    assert 'does not exist' in capsys.readouterr().err
    assert (
        run(
            '--encoder',
            checkpoint,
            '--input',
            tmp_path / 'none.csv',
            '--output',
            tmp_path / 'out.npy',
        )
        == 1
    )
    assert 'none.csv' in capsys.readouterr().err
    assert not (tmp_path / 'out.npy').exists()


def test_read_points_geometry_without_crs(tmp_path):
    source = tmp_path / 'nocrs.geojson'
    source.write_text(
        json.dumps(
            {
                'type': 'FeatureCollection',
                'features': [
                    {
                        'type': 'Feature',
                        'properties': {'k': 1},
                        'geometry': {'type': 'Point', 'coordinates': [5.0, 6.0]},
                    },
                    {'type': 'Feature', 'properties': {'k': 2}, 'geometry': None},
                ],
            }
        )
    )
    table = read_points(source)
    assert table.lon[0] == 5.0 and np.isnan(table.lon[1])
    assert points_io.invalid_rows(table.lon, table.lat).tolist() == [False, True]
