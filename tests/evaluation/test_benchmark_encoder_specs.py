"""``--encoders NAME:KEY=VALUE``, a failing plugin load, the content-keyed cache."""

import numpy as np
import pytest
from benchmark_toys import task_fixture

from satclip_tg.datasets.downstream import load_points
from satclip_tg.evaluation.encoders import resolve_encoder, split_hyperparameters
from satclip_tg.evaluation.runner import run_benchmark


def test_hyperparameters_are_split_and_read_as_yaml_scalars():
    assert split_hyperparameters('spherec:frequency_num=32,min_radius=0.5') == (
        'spherec',
        {'frequency_num': 32, 'min_radius': 0.5},
    )
    assert split_hyperparameters('theory') == ('theory', {})
    assert split_hyperparameters('runs/a:b/last.ckpt') == ('runs/a:b/last.ckpt', {})
    with pytest.raises(ValueError, match='KEY=VALUE'):
        split_hyperparameters('spherec:frequency_num=32,oops')


def test_an_encoding_takes_its_hyperparameters():
    coords = np.array([[0.0, 0.0], [10.0, 20.0]])
    default = resolve_encoder('spherec').embed(coords)
    small = resolve_encoder('spherec:frequency_num=4')
    assert small.name == 'spherec:frequency_num=4'
    assert small.embed(coords).shape[1] < default.shape[1]
    labelled = resolve_encoder(
        'tiny=sphericalharmonics+siren:legendre_polys=3,network.hidden_dim=8'
    )
    assert labelled.name == 'tiny' and labelled.embed(coords).shape == (2, 256)
    with pytest.raises(ValueError, match='no KEY=VALUE'):
        resolve_encoder('lonlat:scale=2')


class Broken:
    task_type = 'regression'
    num_classes = None

    def load(self, num_points, seed):
        raise FileNotFoundError('labels.csv\nsecond line')


class Versioned:
    task_type = 'regression'
    num_classes = None
    data_version = '1'
    offset = 0.0

    def load(self, num_points, seed):
        rng = np.random.default_rng(seed)
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, num_points)))
        coords = np.stack([rng.uniform(-180, 180, num_points), lat], axis=1)
        return coords, coords[:, 1] + self.offset


toy_tasks = task_fixture(
    'h5_toy_tasks', {'h5_broken': Broken, 'h5_versioned': Versioned}
)


def test_a_task_whose_load_raises_fails_alone(toy_tasks, tmp_path):
    result = run_benchmark(
        ['wrap'],
        ['h5_broken', 'h5_versioned'],
        split='random',
        probes=['linear'],
        num_points=60,
        num_folds=2,
        inner_folds=2,
        baselines=False,
        random_init=False,
        cache_dir=tmp_path,
        progress=False,
    )
    assert {r.task for r in result.rows} == {'h5_versioned'}
    assert result.unavailable['task h5_broken'] == (
        'load failed: FileNotFoundError: labels.csv'
    )


def test_the_point_cache_is_keyed_by_data_version(toy_tasks, tmp_path):
    first = load_points('h5_versioned', 10, cache_dir=tmp_path)
    Versioned.offset = 1.0
    try:
        assert load_points('h5_versioned', 10, cache_dir=tmp_path).labels.tolist() == (
            first.labels.tolist()
        )  # the same data_version: the cached points
        refreshed = load_points('h5_versioned', 10, cache_dir=tmp_path, refresh=True)
        np.testing.assert_allclose(refreshed.labels, first.labels + 1.0)
        Versioned.data_version = '2'
        Versioned.offset = 2.0
        changed = load_points('h5_versioned', 10, cache_dir=tmp_path)
        np.testing.assert_allclose(changed.labels, first.labels + 2.0)
    finally:
        Versioned.offset = 0.0
        Versioned.data_version = '1'
