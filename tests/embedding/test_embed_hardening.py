"""User errors of ``satclip-tg embed`` and ``embed-grid``: refused in one line.

Every refusal must exit 1 with exactly one ``error:`` line and no traceback,
and leave the folder as it was: no output, no probe file, inputs unchanged.
"""

import contextlib
import gzip
import os
import pathlib
import tempfile
from collections.abc import Iterator

import geopandas
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import pytest
import torch
from satclip_checkpoints import torchgeo_model, write_official
from shapely.geometry import Point

from satclip_tg.cli import build_parser, main
from satclip_tg.commands import embed as embed_command
from satclip_tg.commands import embed_grid as embed_grid_command
from satclip_tg.embedding import GridSpec, read_points
from satclip_tg.embedding.grid import estimate_grid_output
from satclip_tg.pretrained import load_location_encoder

SITES = {
    'site': ['zurich', 'nairobi', 'lima'],
    'lon': [8.55, 36.82, -77.04],
    'lat': [47.37, -1.29, -12.05],
}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp('encoder')
    return write_official(folder / 'satclip-l10.ckpt', torchgeo_model(10, seed=3))


@pytest.fixture(scope='module')
def encoder(checkpoint):
    return load_location_encoder(checkpoint)


def direct(encoder, lon, lat) -> np.ndarray:
    coords = torch.tensor(np.stack([lon, lat], axis=1), dtype=torch.float64)
    with torch.no_grad():
        return encoder(coords).float().numpy()


def embed(checkpoint, source, output, *extra) -> int:
    args = ['--encoder', checkpoint, '--input', source, '--output', output, *extra]
    return main(['embed', '--quiet', '--device', 'cpu', *map(str, args)])


def snapshot(folder: pathlib.Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob('*'))
        if path.is_file() and not path.is_symlink()
    }


@contextlib.contextmanager
def unchanged(folder: pathlib.Path) -> Iterator[None]:
    """The files under ``folder`` are the same after the block (none added)."""
    before = snapshot(folder)
    yield
    assert snapshot(folder) == before


def refused(capsys, status: int, *fragments: str) -> str:
    """Check a one-line refusal; return what went to stdout."""
    captured = capsys.readouterr()
    assert status == 1, captured
    assert 'Traceback' not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if 'error:' in line]
    assert len(lines) == 1, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return str(captured.out)


@pytest.fixture
def no_encoder(monkeypatch):
    """Fail the test if a command gets as far as loading the encoder."""

    def forbidden(args):
        raise AssertionError('the encoder was loaded before the check')

    monkeypatch.setattr(embed_command, 'load_encoder_from_args', forbidden)
    monkeypatch.setattr(embed_grid_command, 'load_encoder_from_args', forbidden)


# ------------------------------------------------------- coordinate columns


def test_duplicate_coordinate_columns_are_refused(
    tmp_path, checkpoint, capsys, no_encoder
):
    source = tmp_path / 'dup.csv'
    source.write_text('site,lon,lat,lon\nzurich,8.55,47.37,0\nlima,-77.04,-12.05,0\n')
    output = tmp_path / 'out.parquet'
    with unchanged(tmp_path):
        status = embed(checkpoint, source, output)
        refused(capsys, status, 'dup.csv', "2 columns named 'lon'", 'ambiguous')
        # The name pandas gave the second copy does not make it unambiguous.
        status = embed(checkpoint, source, output, '--lon-col', 'lon.1')
        refused(capsys, status, "2 columns named 'lon'")
    # Parquet allows repeated names too; pandas cannot even read them.
    table = pa.table(
        [pa.array([8.55]), pa.array([47.37]), pa.array([0.0])],
        names=['lon', 'lat', 'lon'],
    )
    parquet = tmp_path / 'dup.parquet'
    pq.write_table(table, parquet)
    with unchanged(tmp_path):
        status = embed(checkpoint, parquet, output)
        refused(capsys, status, 'dup.parquet', "column named 'lon'", 'unique')


def test_ambiguous_and_identical_coordinate_columns(
    tmp_path, checkpoint, capsys, no_encoder
):
    source = tmp_path / 'case.csv'
    source.write_text('lon,LON,lat\n1,2,3\n')
    output = tmp_path / 'out.npy'
    with unchanged(tmp_path):
        status = embed(checkpoint, source, output)
        refused(capsys, status, "'lon' and 'LON'", '--lon-col')
    sites = tmp_path / 'sites.csv'
    pd.DataFrame(SITES).to_csv(sites, index=False)
    with unchanged(tmp_path):
        status = embed(
            checkpoint, sites, output, '--lon-col', 'lat', '--lat-col', 'lat'
        )
        refused(capsys, status, "both be read from column 'lat'")
        # Only --lon-col given, and the latitude found by name is the same.
        status = embed(checkpoint, sites, output, '--lon-col', 'lat')
        refused(capsys, status, "column 'lat'", '--lat-col')


@pytest.mark.parametrize(
    ('values', 'shown'),
    [
        ([True, False, True], 'True'),
        (pd.to_datetime(['2020-01-01'] * 3), 'Timestamp'),
        (["47°22'N", "1°17'S", "12°03'S"], "47°22'N"),
    ],
    ids=['boolean', 'datetime', 'text'],
)
def test_non_numeric_columns_are_refused(
    tmp_path, checkpoint, capsys, no_encoder, values, shown
):
    source = tmp_path / 'points.parquet'
    pd.DataFrame({'lon': SITES['lon'], 'lat': values}).to_parquet(source)
    with unchanged(tmp_path):
        status = embed(checkpoint, source, tmp_path / 'out.npy')
        refused(capsys, status, "latitude column 'lat'", shown, '--lat-col')


def test_boolean_csv_column_is_not_zero_or_one_degree(
    tmp_path, checkpoint, capsys, no_encoder
):
    source = tmp_path / 'flags.csv'
    source.write_text('lon,lat,ok\nTrue,1.5,1\nFalse,2.5,0\n')
    with unchanged(tmp_path):
        status = embed(checkpoint, source, tmp_path / 'out.npy')
        refused(capsys, status, "longitude column 'lon' holds booleans", 'True')
    # Not even with --on-invalid nan: the column is wrong, not a few rows.
    with unchanged(tmp_path):
        status = embed(checkpoint, source, tmp_path / 'out.npy', '--on-invalid', 'nan')
        refused(capsys, status, 'booleans')


def test_a_few_non_numbers_are_still_invalid_rows(tmp_path):
    source = tmp_path / 'mixed.csv'
    source.write_text('lon,lat\n1,2\nn/a,3\n4,5\n')
    table = read_points(source)
    assert np.isnan(table.lon[1]) and table.lon[2] == 4.0


# ---------------------------------------------------------------- vector CRS


def test_projected_layers_are_reprojected(tmp_path, checkpoint, encoder):
    points = geopandas.GeoDataFrame(
        SITES,
        geometry=[Point(x, y) for x, y in zip(SITES['lon'], SITES['lat'], strict=True)],
        crs='EPSG:4326',
    ).to_crs('EPSG:3395')  # World Mercator: metres
    expected = direct(encoder, SITES['lon'], SITES['lat'])
    for name in ('mercator.gpkg', 'mercator.geojson', 'mercator.parquet'):
        source = tmp_path / name
        if name.endswith('.parquet'):
            points.to_parquet(source)
        else:
            points.to_file(source)
        assert read_points(source).lon[0] == pytest.approx(8.55)
        output = tmp_path / f'{source.stem}-{source.suffix[1:]}.npy'
        assert embed(checkpoint, source, output) == 0
        np.testing.assert_allclose(np.load(output), expected, atol=1e-5)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_layer_without_crs(tmp_path, checkpoint, encoder, capsys):
    degrees = geopandas.GeoDataFrame(
        {'k': [1, 2]}, geometry=[Point(8.55, 47.37), Point(-77.04, -12.05)]
    )
    source = tmp_path / 'degrees.gpkg'
    degrees.to_file(source, driver='GPKG')
    assert geopandas.read_file(source).crs is None
    output = tmp_path / 'degrees.npy'
    assert embed(checkpoint, source, output) == 0
    err = capsys.readouterr().err
    assert 'warning:' in err and 'has no CRS' in err and 'error:' not in err
    expected = direct(encoder, [8.55, -77.04], [47.37, -12.05])
    np.testing.assert_allclose(np.load(output), expected, atol=1e-5)
    # UTM metres without a CRS: never read as degrees, not even with NaN rows.
    metres = geopandas.GeoDataFrame(
        {'k': [1, 2]}, geometry=[Point(465000, 5245000), Point(120.0, 45.0)]
    )
    source = tmp_path / 'metres.gpkg'
    metres.to_file(source, driver='GPKG')
    for extra in ([], ['--on-invalid', 'nan']):
        with unchanged(tmp_path):
            status = embed(checkpoint, source, tmp_path / 'metres.npy', *extra)
            refused(capsys, status, 'metres.gpkg has no CRS', 'x=465000', 'a_srs')


def test_geojson_in_metres_is_refused(tmp_path, checkpoint, capsys, no_encoder):
    # GeoJSON without a "crs" member is EPSG:4326 by definition, so GDAL says
    # degrees; coordinates that are all out of range show the label is wrong.
    source = tmp_path / 'utm.geojson'
    source.write_text(
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {}, '
        '"geometry": {"type": "Point", "coordinates": [465000, 5245000]}}]}'
    )
    with unchanged(tmp_path):
        status = embed(checkpoint, source, tmp_path / 'out.npy', '--on-invalid', 'nan')
        refused(capsys, status, 'none of its coordinates', 'x=465000')


def test_crs_without_a_path_to_degrees(tmp_path, checkpoint, capsys, no_encoder):
    local = pyproj.CRS.from_wkt(
        'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],'
        'AXIS["X",EAST],AXIS["Y",NORTH]]'
    )
    frame = geopandas.GeoDataFrame({'k': [1]}, geometry=[Point(5, 6)], crs=local)
    source = tmp_path / 'local.gpkg'
    frame.to_file(source, driver='GPKG')
    with unchanged(tmp_path):
        status = embed(checkpoint, source, tmp_path / 'out.npy')
        refused(capsys, status, 'could not reproject', 'local.gpkg', 'site grid')


# ------------------------------------------------------- output is the input


def test_output_that_is_the_input_is_refused(
    tmp_path, checkpoint, capsys, monkeypatch, no_encoder
):
    source = tmp_path / 'points.parquet'
    pd.DataFrame(SITES).to_parquet(source)
    (tmp_path / 'link.parquet').symlink_to(source)
    os.link(source, tmp_path / 'hard.parquet')
    (tmp_path / 'sub').mkdir()
    monkeypatch.chdir(tmp_path / 'sub')
    spellings = [
        source,
        '../points.parquet',
        tmp_path / 'sub' / '..' / 'points.parquet',
        tmp_path / 'link.parquet',
        tmp_path / 'hard.parquet',
    ]
    with unchanged(tmp_path):
        for output in spellings:
            for extra in ([], ['--overwrite']):
                status = embed(checkpoint, source, output, *extra)
                refused(capsys, status, 'is the input file', 'another output')
        # And the other way round: the input given through the link.
        status = embed(checkpoint, '../link.parquet', source, '--overwrite')
        refused(capsys, status, 'is the input file')


# ------------------------------------------------------------ unreadable input


def test_latin1_csv_needs_encoding(tmp_path, checkpoint, encoder, capsys):
    source = tmp_path / 'stations.csv'
    source.write_bytes(
        'name,lon,lat\nZürich,8.55,47.37\nSão Paulo,-46.63,-23.55\n'.encode('latin-1')
    )
    output = tmp_path / 'out.parquet'
    with unchanged(tmp_path):
        status = embed(checkpoint, source, output)
        refused(capsys, status, 'stations.csv', 'not utf-8 text', '0xfc', '--encoding')
        status = embed(checkpoint, source, output, '--encoding', 'klingon')
        refused(capsys, status, "unknown text encoding 'klingon'")
    assert embed(checkpoint, source, output, '--encoding', 'latin-1') == 0
    table = pd.read_parquet(output)
    assert table['name'].tolist() == ['Zürich', 'São Paulo']
    expected = direct(encoder, [8.55, -46.63], [47.37, -23.55])
    np.testing.assert_allclose(
        table.filter(like='emb_').to_numpy(), expected, atol=2e-6
    )
    utf16 = tmp_path / 'wide.csv'
    utf16.write_bytes('lon,lat\n8.55,47.37\n'.encode('utf-16'))
    with unchanged(tmp_path):
        refused(
            capsys, embed(checkpoint, utf16, tmp_path / 'w.npy'), '--encoding utf-16'
        )
    assert embed(checkpoint, utf16, tmp_path / 'w.npy', '--encoding', 'utf-16') == 0


def test_unreadable_inputs(tmp_path, checkpoint, capsys, no_encoder):
    rng = np.random.default_rng(0)
    parquet = tmp_path / 'real.parquet'
    pd.DataFrame({'lon': np.zeros(500), 'lat': np.zeros(500)}).to_parquet(parquet)
    data = parquet.read_bytes()
    gzipped = gzip.compress(b'lon,lat\n' + b'1.5,2.5\n' * 20000)
    files = {
        'binary.csv': (bytes(rng.integers(0, 256, 4000, dtype=np.uint8)), 'binary'),
        'table.csv': (data, 'Parquet file'),
        'packed.csv': (gzipped, 'gzip-compressed'),
        'truncated.csv.gz': (gzipped[: len(gzipped) // 2], 'truncated.csv.gz'),
        'empty.csv': (b'', 'empty.csv'),
        'truncated.parquet': (data[: len(data) // 2], 'as Parquet'),
        'text.parquet': (b'lon,lat\n1,2\n', 'as Parquet'),
        'broken.gpkg': (b'SQLite format 3\x00' + b'\x00' * 100, 'as a vector file'),
    }
    for name, (content, _) in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / 'folder.csv').mkdir()
    output = tmp_path / 'out.parquet'
    with unchanged(tmp_path):
        for name, (_, fragment) in files.items():
            refused(capsys, embed(checkpoint, tmp_path / name, output), name, fragment)
        status = embed(checkpoint, tmp_path / 'folder.csv', output)
        refused(capsys, status, 'is a folder')
    assert list((tmp_path / 'folder.csv').iterdir()) == []


# ----------------------------------------------------------- unwritable output


def test_unwritable_output_is_refused_before_any_work(
    tmp_path, checkpoint, capsys, monkeypatch, no_encoder
):
    source = tmp_path / 'points.csv'
    pd.DataFrame(SITES).to_csv(source, index=False)
    (tmp_path / 'notes.txt').write_text('a file')
    (tmp_path / 'taken.parquet').mkdir()
    with unchanged(tmp_path):
        status = embed(checkpoint, source, tmp_path / 'notes.txt' / 'out.parquet')
        refused(capsys, status, 'notes.txt is a file, not a folder')
        status = embed(checkpoint, source, tmp_path / 'notes.txt' / 'a' / 'b.npy')
        refused(capsys, status, 'notes.txt is a file, not a folder')
        status = embed(checkpoint, source, tmp_path / 'taken.parquet', '--overwrite')
        refused(capsys, status, 'is a folder')
    assert list((tmp_path / 'taken.parquet').iterdir()) == []

    # Permission bits do not stop root (CI runs as root): deny the probe.
    def denied(*args, **kwargs):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(tempfile, 'mkstemp', denied)
    with unchanged(tmp_path):
        status = embed(checkpoint, source, tmp_path / 'locked' / 'out.parquet')
        refused(capsys, status, 'no file can be created in', 'Permission denied')
    assert not (tmp_path / 'locked').exists()


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_read_only_folder(tmp_path, checkpoint, capsys, no_encoder):
    source = tmp_path / 'points.csv'
    pd.DataFrame(SITES).to_csv(source, index=False)
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with unchanged(tmp_path):
            status = embed(checkpoint, source, locked / 'out.parquet')
            refused(capsys, status, 'no file can be created in')
    finally:
        locked.chmod(0o755)


# ------------------------------------------------------------------ embed-grid


def grid_args(checkpoint, output, *extra) -> list[str]:
    return [
        'embed-grid',
        '--encoder',
        str(checkpoint),
        '--device',
        'cpu',
        '--output',
        str(output),
        *map(str, extra),
    ]


def test_estimate_grid_output(encoder):
    spec = GridSpec.from_bbox((-180, -90, 180, 90), 10)  # 36 x 18 cells
    small = estimate_grid_output(encoder, spec)
    assert (small.cells, small.bands, small.sample_cells) == (648, 256, 0)
    assert small.raster_bytes == 648 * 256 * 4 and small.seconds is None
    timed = estimate_grid_output(
        encoder, spec, pca_components=3, sample_cells=100, compress='zstd'
    )
    assert timed.sample_cells == 36 * 2 and timed.seconds is not None
    assert timed.seconds > 0
    assert timed.preview_bytes == 648 * 3
    assert timed.total_bytes == 648 * (256 * 4 + 3)
    assert timed.file_bytes == timed.raster_bytes
    # Uncompressed tiled GeoTIFFs pad the edge tiles: 3 x 2 tiles of 16 x 16.
    plain = estimate_grid_output(encoder, spec, compress='none', tile_size=16)
    assert plain.file_bytes == 6 * 16 * 16 * 256 * 4 > plain.raster_bytes
    world = GridSpec.from_bbox((-180, -90, 180, 90), 0.02)
    assert world.width * world.height * 256 * 4 == 165_888_000_000


def test_grid_prints_the_estimate(tmp_path, checkpoint, capsys):
    output = tmp_path / 'world.tif'
    assert main(grid_args(checkpoint, output, '--resolution', 10)) == 0
    out = capsys.readouterr().out
    assert 'estimate: 648 cells x 256 bands x 4 B = 663.6 kB uncompressed' in out
    assert f'free in {tmp_path}' in out
    assert out.index('estimate:') < out.index('wrote')


def test_grid_refused_when_the_disk_is_too_small(
    tmp_path, checkpoint, capsys, monkeypatch
):
    seen = []

    def free(path):
        seen.append(pathlib.Path(path))
        return 500_000

    monkeypatch.setattr(embed_grid_command, 'free_disk_bytes', free)
    output = tmp_path / 'maps' / 'world.tif'
    with unchanged(tmp_path):
        status = main(
            grid_args(checkpoint, output, '--resolution', 10, '--pca', 3, '--quiet')
        )
        refused(
            capsys,
            status,
            'not enough disk space',
            '648 cells x 256 bands x 4 B = 663.6 kB',
            '500.0 kB is free',
        )
    assert seen == [output.parent] and not output.parent.exists()


def test_uncompressed_padding_counts_for_the_disk(
    tmp_path, checkpoint, capsys, monkeypatch
):
    monkeypatch.setattr(embed_grid_command, 'free_disk_bytes', lambda path: 2 * 10**6)
    output = tmp_path / 'world.tif'
    with unchanged(tmp_path):
        args = grid_args(checkpoint, output, '--resolution', 10, '--compress', 'none')
        refused(capsys, main(args), '663.6 kB uncompressed (67.1 MB on disk', 'padded')
    assert main([*args, '--tile-size', '16']) == 0
    assert output.stat().st_size < 2 * 10**6


def test_large_grid_needs_yes(tmp_path, checkpoint, capsys, monkeypatch):
    monkeypatch.setattr(embed_grid_command, 'free_disk_bytes', lambda path: 10**15)
    output = tmp_path / 'world.tif'
    with unchanged(tmp_path):
        status = main(grid_args(checkpoint, output, '--resolution', 0.02))
        out = refused(capsys, status, '165.9 GB uncompressed', 'about', 'add --yes')
        assert 'estimate: 162,000,000 cells x 256 bands x 4 B = 165.9 GB' in out
        assert 'timed on 16,384 cells' in out
        # --quiet prints no estimate, but the refusal still has the figures.
        status = main(grid_args(checkpoint, output, '--resolution', 0.05, '--quiet'))
        out = refused(capsys, status, '26.5 GB uncompressed', 'add --yes')
        assert out == ''
    # Above the threshold, --yes lets the run go ahead.
    monkeypatch.setattr(embed_grid_command, 'CONFIRM_BYTES', 100_000)
    with unchanged(tmp_path):
        status = main(grid_args(checkpoint, output, '--resolution', 10, '--quiet'))
        refused(capsys, status, '663.6 kB', 'add --yes')
    assert main(grid_args(checkpoint, output, '--resolution', 10, '--yes')) == 0
    assert output.exists()


def test_grid_output_checks_before_the_encoder(
    tmp_path, checkpoint, capsys, no_encoder
):
    (tmp_path / 'notes.txt').write_text('a file')
    with unchanged(tmp_path):
        output = tmp_path / 'notes.txt' / 'world.tif'
        status = main(grid_args(checkpoint, output, '--resolution', 10))
        refused(capsys, status, 'notes.txt is a file, not a folder')
        preview = tmp_path / 'notes.txt' / 'p.png'
        status = main(
            grid_args(
                checkpoint,
                tmp_path / 'w.tif',
                '--resolution',
                10,
                '--pca',
                3,
                '--preview',
                preview,
            )
        )
        refused(capsys, status, 'notes.txt is a file, not a folder')
        status = main(
            grid_args(
                checkpoint, tmp_path / 'w.tif', '--resolution', 10, '--tile-size', 100
            )
        )
        refused(capsys, status, '--tile-size must be a positive multiple of 16')


def test_grid_help_has_the_arithmetic():
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == 'command')
    text = subparsers.choices['embed-grid'].format_help()
    assert '--yes' in text and '166 GB' in text and 'cells x bands x 4 bytes' in text
