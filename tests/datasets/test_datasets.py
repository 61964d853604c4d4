import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torchgeo.datasets import DatasetNotFoundError, S2100k

from satclip_tg.datasets import (
    SatCLIPImageryDataset,
    UnreadableTileError,
    UnreadableTileWarning,
)
from satclip_tg.datasets.s2_100k import TILE_PROBLEMS, TileCheckReport

FIXTURE = Path(__file__).parents[1] / 'data' / 's2_100k'
REAL = Path(__file__).resolve().parents[3] / 'shared' / 'data' / 's2-100k-sample'


def copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / 'data'
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns('*.py'))
    return root


def write_tiles(root: Path, n: int, bands: int, size: int) -> None:
    """Write an S2-100K-layout data set with non-default names and band count."""
    (root / 'images').mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        fn = f'scene_{i:03d}_{chr(97 + i)}.tif'
        with rasterio.open(
            root / 'images' / fn,
            'w',
            driver='GTiff',
            dtype='uint16',
            count=bands,
            height=size,
            width=size,
            crs='EPSG:32633',
            transform=from_origin(500000, 5000000, 10, 10),
        ) as dst:
            dst.write(rng.integers(0, 10000, (bands, size, size), dtype=np.uint16))
        rows.append({'fn': fn, 'lon': -170.0 + 40 * i, 'lat': -60.0 + 15 * i})
    pd.DataFrame(rows).to_csv(root / 'index.csv', index=False)


def test_fixture_samples() -> None:
    ds = SatCLIPImageryDataset(FIXTURE)
    assert isinstance(ds, S2100k)
    index = pd.read_csv(FIXTURE / 'index.csv')
    assert len(ds) == len(index) == 12
    assert ds.bands == 12
    assert ds.patch_size == (32, 32)
    sample = ds[5]
    assert sample is not None
    assert set(sample) == {'image', 'point'}
    assert sample['image'].shape == (12, 32, 32)
    assert sample['image'].dtype == torch.uint16  # the tiles' own dtype
    assert ds.dtype == torch.uint16
    assert ds.sample_bytes == 12 * 32 * 32 * 2 + 2 * 4
    assert sample['point'].dtype == torch.float32
    assert sample['point'].shape == (2,)
    # raw values, not scaled
    assert 1 < float(sample['image'].float().max()) <= 10000
    expected = torch.tensor(index.loc[5, ['lon', 'lat']].to_numpy(dtype=float))
    torch.testing.assert_close(sample['point'].double(), expected, atol=1e-4, rtol=0)
    with rasterio.open(FIXTURE / 'images' / 'patch_5.tif') as src:
        np.testing.assert_array_equal(sample['image'].numpy(), src.read())


def test_points_mode_and_transforms() -> None:
    ds = SatCLIPImageryDataset(FIXTURE, mode='points')
    sample = ds[0]
    assert sample is not None and set(sample) == {'point'}

    def add_one(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**sample, 'image': sample['image'] + 1}

    ds = SatCLIPImageryDataset(FIXTURE, transforms=add_one)
    raw = SatCLIPImageryDataset(FIXTURE)[0]
    sample = ds[0]
    assert sample is not None and raw is not None
    torch.testing.assert_close(sample['image'], raw['image'].float() + 1)
    with pytest.raises(ValueError, match='mode'):
        SatCLIPImageryDataset(FIXTURE, mode='images')  # type: ignore[arg-type]


def test_real_patches() -> None:
    if not (REAL / 'index.csv').is_file():
        pytest.skip(f'real S2-100K sample patches not found in {REAL}')
    ds = SatCLIPImageryDataset(REAL)
    assert len(ds) == 2
    assert ds.bands == 12
    assert ds.patch_size == (256, 256)
    index = pd.read_csv(REAL / 'index.csv')
    for i in range(len(ds)):
        sample = ds[i]
        assert sample is not None
        assert sample['image'].shape == (12, 256, 256)
        assert sample['image'].dtype == torch.uint16
        # surface reflectance x 10000
        assert 100 < float(sample['image'].float().max()) <= 20000
        expected = torch.tensor(index.loc[i, ['lon', 'lat']].to_numpy(dtype=float))
        torch.testing.assert_close(
            sample['point'].double(), expected, atol=1e-4, rtol=0
        )


def test_missing_data_hints_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        SatCLIPImageryDataset(tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert 'index.csv' in message
    assert 'download=True' in message
    assert 'data.init_args.download: true' in message


def test_missing_images_hints_download(tmp_path: Path) -> None:
    shutil.copy(FIXTURE / 'index.csv', tmp_path / 'index.csv')
    with pytest.raises(DatasetNotFoundError, match=r'data\.init_args\.download: true'):
        SatCLIPImageryDataset(tmp_path)


def test_own_imagery_any_names_and_band_count(tmp_path: Path) -> None:
    write_tiles(tmp_path, n=4, bands=3, size=20)
    assert not (tmp_path / 'images' / 'patch_0.tif').exists()
    ds = SatCLIPImageryDataset(tmp_path)
    assert len(ds) == 4
    assert ds.bands == 3
    assert ds.patch_size == (20, 20)
    sample = ds[3]
    assert sample is not None
    assert sample['image'].shape == (3, 20, 20)
    torch.testing.assert_close(sample['point'], torch.tensor([-50.0, -15.0]))


def test_renamed_fixture_works(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv')
    for fn in index['fn']:
        (root / 'images' / fn).rename(root / 'images' / f'tile-{fn}')
    index['fn'] = 'tile-' + index['fn']
    index.to_csv(root / 'index.csv', index=False)
    ds = SatCLIPImageryDataset(root)
    sample = ds[0]
    assert sample is not None and sample['image'].shape == (12, 32, 32)


@pytest.mark.parametrize('damage', ['garbage', 'truncated'])
def test_corrupt_tile_raises_naming_file(tmp_path: Path, damage: str) -> None:
    root = copy_fixture(tmp_path)
    path = root / 'images' / 'patch_3.tif'
    if damage == 'garbage':
        path.write_bytes(b'\x00not a tiff\xff' * 50)
    else:
        path.write_bytes(path.read_bytes()[:2000])
    ds = SatCLIPImageryDataset(root)
    with pytest.raises(UnreadableTileError) as info:
        ds[3]
    assert isinstance(info.value, RuntimeError)
    assert str(path) in str(info.value)
    assert 'RasterioIOError' in str(info.value)
    assert info.value.__cause__ is not None
    # the other tiles still read
    assert ds[2] is not None


def test_corrupt_tile_skipped_with_one_warning(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    path = root / 'images' / 'patch_3.tif'
    path.write_bytes(b'garbage' * 100)
    ds = SatCLIPImageryDataset(root, skip_unreadable=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert ds[3] is None
        assert ds[3] is None
        assert ds[4] is not None
    skipped = [w for w in caught if issubclass(w.category, UnreadableTileWarning)]
    assert len(skipped) == 1
    assert str(path) in str(skipped[0].message)


def test_corrupt_first_tile(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    (root / 'images' / 'patch_0.tif').write_bytes(b'garbage' * 100)
    with pytest.raises(UnreadableTileError, match=r'patch_0\.tif'):
        _ = SatCLIPImageryDataset(root).bands
    ds = SatCLIPImageryDataset(root, skip_unreadable=True)
    with pytest.warns(UnreadableTileWarning):
        assert ds.bands == 12
    assert ds[1] is not None


def test_tile_with_other_shape_is_rejected(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    path = root / 'images' / 'patch_7.tif'
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        dtype='uint16',
        count=12,
        height=16,
        width=16,
        crs='EPSG:32633',
        transform=from_origin(500000, 5000000, 10, 10),
    ) as dst:
        dst.write(np.zeros((12, 16, 16), dtype=np.uint16))
    ds = SatCLIPImageryDataset(root)
    with pytest.raises(UnreadableTileError, match=r'patch_7\.tif.*\(12, 16, 16\)'):
        ds[7]


def test_index_missing_columns(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv').rename(columns={'lat': 'latitude'})
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError, match=r'index\.csv lacks the column\(s\) lat'):
        SatCLIPImageryDataset(root)
    index.drop(columns='fn').to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError, match=r'column\(s\) fn, lat'):
        SatCLIPImageryDataset(root)


@pytest.mark.parametrize(
    ('column', 'value', 'count'),
    [('lat', 95.0, 1), ('lon', -200.0, 1), ('lat', np.nan, 1), ('lon', 'x', 1)],
)
def test_index_bad_coordinates(
    tmp_path: Path, column: str, value: object, count: int
) -> None:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv').astype({column: object})
    index.loc[4, column] = value
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError) as info:
        SatCLIPImageryDataset(root)
    message = str(info.value)
    assert 'index.csv' in message
    assert f'{count} of 12 coordinate rows are invalid' in message
    assert 'first bad row is 4' in message


def test_index_empty_or_not_csv(tmp_path: Path) -> None:
    (tmp_path / 'images').mkdir()
    (tmp_path / 'index.csv').write_text('fn,lon,lat\n')
    with pytest.raises(ValueError, match='no rows'):
        SatCLIPImageryDataset(tmp_path)
    (tmp_path / 'index.csv').write_text('')
    with pytest.raises(ValueError, match=r'index\.csv cannot be read as CSV'):
        SatCLIPImageryDataset(tmp_path)


def test_index_with_spaces_and_missing_file_name(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv')
    text = 'fn, lon, lat\n' + ''.join(
        f'{r.fn}, {r.lon}, {r.lat}\n' for r in index.itertuples()
    )
    (root / 'index.csv').write_text(text)
    ds = SatCLIPImageryDataset(root)
    sample = ds[11]
    assert sample is not None and sample['image'].shape == (12, 32, 32)
    index.loc[2, 'fn'] = None
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError, match='first is row 2'):
        SatCLIPImageryDataset(root)


@pytest.mark.parametrize(
    ('name', 'reason'),
    [
        ('/etc/passwd', 'absolute path'),
        ('../index.csv', "'..' component"),
        ('sub/../../x.tif', "'..' component"),
        ('..\\x.tif', "'..' component"),
        ('C:\\tiles\\a.tif', 'drive'),
        ('\\\\server\\share\\a.tif', 'absolute path'),
        ('.', 'images/ itself'),
        ('./', 'images/ itself'),
        ('   ', 'empty name'),
    ],
)
def test_index_file_names_must_stay_inside_images(
    tmp_path: Path, name: str, reason: str
) -> None:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv')
    index.loc[4, 'fn'] = name
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError) as info:
        SatCLIPImageryDataset(root)
    message = str(info.value)
    assert '1 of 12 row(s)' in message
    assert f'row 4 {name.strip()!r}' in message
    assert reason in message
    assert 'relative to images/' in message


def test_index_names_every_count_and_the_first_bad_rows(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv')
    for row in range(2, 10):
        index.loc[row, 'fn'] = f'../escape_{row}.tif'
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError) as info:
        SatCLIPImageryDataset(root)
    message = str(info.value)
    assert '8 of 12 row(s)' in message
    assert "row 2 '../escape_2.tif'" in message
    assert "row 6 '../escape_6.tif'" in message
    assert 'escape_7' not in message  # the first 5 are named
    assert 'and 3 more' in message


def test_escaping_first_row_is_refused_not_followed(tmp_path: Path) -> None:
    # '../index.csv' exists (outside images/): the presence check must not
    # take it for the first tile, and the index must be refused.
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv')
    index.loc[0, 'fn'] = '../index.csv'
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError, match=r"row 0 '\.\./index\.csv'"):
        SatCLIPImageryDataset(root)


def test_nested_and_dotted_names_inside_images_work(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    (root / 'images' / 'sub').mkdir()
    (root / 'images' / 'patch_1.tif').rename(root / 'images' / 'sub' / 'patch_1.tif')
    index = pd.read_csv(root / 'index.csv')
    index.loc[1, 'fn'] = './sub//patch_1.tif'
    index.loc[2, 'fn'] = 'sub/../patch_2.tif'  # harmless, but refused: '..'
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError, match=r"row 2 'sub/\.\./patch_2\.tif'"):
        SatCLIPImageryDataset(root)
    index.loc[2, 'fn'] = 'patch_2.tif'
    index.to_csv(root / 'index.csv', index=False)
    ds = SatCLIPImageryDataset(root)
    assert ds.files[1] == str(root / 'images' / 'sub' / 'patch_1.tif')
    assert ds[1] is not None
    assert ds.check_tiles().ok


@pytest.mark.parametrize('name', ['patch_1.tif', './patch_1.tif', 'patch_1.tif/'])
def test_index_repeated_file_names_are_refused(tmp_path: Path, name: str) -> None:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv')
    index.loc[7, 'fn'] = name
    index.to_csv(root / 'index.csv', index=False)
    with pytest.raises(ValueError) as info:
        SatCLIPImageryDataset(root)
    message = str(info.value)
    assert '1 row(s) repeat the file name of an earlier row' in message
    assert f'row 7 {name!r} (as row 1)' in message


def write_tile(path: Path, bands: int = 12, size: int = 32, dtype: str = 'uint16'):
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        dtype=dtype,
        count=bands,
        height=size,
        width=size,
        crs='EPSG:32633',
        transform=from_origin(500000, 5000000, 10, 10),
    ) as dst:
        dst.write(np.ones((bands, size, size), dtype=dtype))


def damage_fixture(root: Path) -> None:
    """Rows 2 missing, 3 garbage, 5 three bands, 7 16x16, 9 float32, 10 both."""
    images = root / 'images'
    (images / 'patch_2.tif').unlink()
    (images / 'patch_3.tif').write_bytes(b'not a tiff' * 64)
    write_tile(images / 'patch_5.tif', bands=3)
    write_tile(images / 'patch_7.tif', size=16)
    write_tile(images / 'patch_9.tif', dtype='float32')
    write_tile(images / 'patch_10.tif', size=16, dtype='float32')


def test_check_tiles_reports_every_bad_row_at_once(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    damage_fixture(root)
    ds = SatCLIPImageryDataset(root)
    report = ds.check_tiles()
    assert isinstance(report, TileCheckReport)
    assert not report.ok
    assert report.tiles == 12
    assert report.counts() == {
        'missing': 1,
        'unreadable': 1,
        'bands': 1,
        'size': 2,
        'dtype': 2,
    }
    assert report.bad_rows == [2, 3, 5, 7, 9, 10]
    assert report.image_shape == (12, 32, 32) and report.dtype == 'uint16'
    assert [p.row for p in report.problems['size']] == [7, 10]
    assert report.problems['missing'][0].fn == 'patch_2.tif'
    assert 'RasterioIOError' in report.problems['unreadable'][0].detail
    assert report.problems['bands'][0].detail == '3 band(s), not 12'
    assert report.problems['dtype'][0].detail == 'float32, not uint16'
    summary = report.summary()
    assert '6 bad row(s)' in summary
    for label in TILE_PROBLEMS.values():
        assert label in summary
    assert "missing file (1): row 2 'patch_2.tif'" in summary
    assert "other size (2): row 7 'patch_7.tif' (16x16, not 32x32), row 10" in summary
    assert '12 band(s) of 32x32 uint16 pixels' in summary
    # Sequential and threaded checks agree.
    assert ds.check_tiles(max_workers=1).problems == report.problems
    with pytest.raises(ValueError, match='max_workers'):
        ds.check_tiles(max_workers=0)


def test_check_tiles_reads_headers_only(tmp_path: Path) -> None:
    # A truncated tile has an intact header: the check passes it, and
    # loading it still raises the per-tile error naming the file.
    root = copy_fixture(tmp_path)
    path = root / 'images' / 'patch_4.tif'
    path.write_bytes(path.read_bytes()[:2000])
    ds = SatCLIPImageryDataset(root)
    report = ds.check_tiles()
    assert report.ok, report.summary()
    assert report.summary().endswith('all fine')
    with pytest.raises(UnreadableTileError, match=r'patch_4\.tif'):
        ds[4]


def test_check_tiles_takes_the_most_common_header(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    write_tile(root / 'images' / 'patch_0.tif', size=16)
    ds = SatCLIPImageryDataset(root)
    assert ds.patch_size == (16, 16)  # lazily, from the first tile
    report = ds.check_tiles()
    assert report.bad_rows == [0]  # not rows 1-11
    assert ds.patch_size == (32, 32)
    sample = ds[1]
    assert sample is not None and sample['image'].shape == (12, 32, 32)


def test_check_tiles_many_bad_rows_are_counted_in_full(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    for i in range(1, 12):
        (root / 'images' / f'patch_{i}.tif').unlink()
    report = SatCLIPImageryDataset(root).check_tiles()
    assert report.counts()['missing'] == 11
    assert 'missing file (11)' in report.summary()
    assert 'and 6 more' in report.summary()
    assert 'and 8 more' in report.summary(shown=3)
