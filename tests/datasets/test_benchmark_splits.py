"""Exact fold membership of every split on tiny synthetic points."""

import numpy as np
import pytest

from satclip_tg.datasets.splits import (
    block_ids,
    group_kfold,
    leave_one_group_out,
    make_splits,
    random_kfold,
    spatial_block_kfold,
)


def assert_partition(folds, n):
    tests = np.concatenate([fold.test for fold in folds])
    assert sorted(tests.tolist()) == list(range(n))
    for fold in folds:
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert sorted(np.union1d(fold.train, fold.test).tolist()) == list(range(n))


def test_random_kfold_exact_membership():
    folds = random_kfold(7, k=3, seed=0)
    permutation = np.random.default_rng(0).permutation(7)
    expected = [sorted(part.tolist()) for part in np.array_split(permutation, 3)]
    assert [fold.test.tolist() for fold in folds] == expected
    # Pinned so that a change of the construction is noticed.
    assert [fold.test.tolist() for fold in folds] == [[2, 3, 4], [5, 6], [0, 1]]
    assert_partition(folds, 7)
    assert [fold.name for fold in folds] == ['fold 0', 'fold 1', 'fold 2']


def test_random_kfold_is_seeded():
    first = [f.test.tolist() for f in random_kfold(20, 4, seed=1)]
    assert first == [f.test.tolist() for f in random_kfold(20, 4, seed=1)]
    assert first != [f.test.tolist() for f in random_kfold(20, 4, seed=2)]


def test_block_ids_cells_and_edges():
    coords = np.array(
        [[-180.0, -90.0], [-170.1, -80.1], [-170.0, -90.0], [180.0, 90.0], [0.0, 0.0]]
    )
    ids = block_ids(coords, 10.0)
    rows = 18
    assert ids.tolist() == [0, 0, rows, 35 * rows + 17, 18 * rows + 9]
    with pytest.raises(ValueError, match='positive'):
        block_ids(coords, 0.0)


def four_blocks():
    # Block A (4 points) at lon 5, B (3) at lon 25, C (2) at lon 45, D (1) at
    # lon 65, all at lat 5 within 10-degree cells.
    lon = [5.0] * 4 + [25.0] * 3 + [45.0] * 2 + [65.0]
    coords = np.column_stack([lon, np.full(10, 5.0)])
    return coords


def test_spatial_block_kfold_exact_membership():
    coords = four_blocks()
    folds = spatial_block_kfold(coords, k=2, block_size=10.0, seed=0)
    # Greedy by size: A -> fold 0, B -> fold 1, C -> fold 1 (3 < 4), D -> fold 0.
    assert folds[0].test.tolist() == [0, 1, 2, 3, 9]
    assert folds[1].test.tolist() == [4, 5, 6, 7, 8]
    assert_partition(folds, 10)


def test_spatial_block_kfold_keeps_blocks_whole_for_any_seed():
    rng = np.random.default_rng(0)
    coords = np.column_stack([rng.uniform(-180, 180, 300), rng.uniform(-90, 90, 300)])
    ids = block_ids(coords, 30.0)
    for seed in range(3):
        folds = spatial_block_kfold(coords, k=5, block_size=30.0, seed=seed)
        assert_partition(folds, 300)
        for fold in folds:
            assert np.intersect1d(ids[fold.test], ids[fold.train]).size == 0
        sizes = [len(fold.test) for fold in folds]
        assert max(sizes) - min(sizes) <= np.bincount(ids).max()


def test_block_size_changes_the_folds():
    coords = four_blocks()
    # 40-degree cells start at -180, so they break at 20 and 60: B and C share
    # a cell (5 points), A and D are alone.
    folds = spatial_block_kfold(coords, k=2, block_size=40.0, seed=0)
    assert folds[0].test.tolist() == [4, 5, 6, 7, 8]
    assert folds[1].test.tolist() == [0, 1, 2, 3, 9]


def test_group_kfold_ties_follow_the_seeded_shuffle():
    groups = np.array(['a', 'a', 'b', 'b', 'c', 'c'])
    for seed in range(4):
        folds = group_kfold(groups, k=3, seed=seed)
        assert sorted(len(f.test) for f in folds) == [2, 2, 2]
        assert_partition(folds, 6)
    with pytest.raises(ValueError, match='cannot make 4 folds from 3 groups'):
        group_kfold(groups, k=4)
    with pytest.raises(ValueError, match='at least 2 folds'):
        group_kfold(groups, k=1)


def test_leave_one_continent_out_exact_membership():
    groups = np.array(['Europe', 'Asia', 'Europe', 'Africa', 'Asia'])
    folds = leave_one_group_out(groups)
    assert [fold.name for fold in folds] == ['Africa', 'Asia', 'Europe']
    assert [fold.test.tolist() for fold in folds] == [[3], [1, 4], [0, 2]]
    assert [fold.train.tolist() for fold in folds] == [
        [0, 1, 2, 4],
        [0, 2, 3],
        [1, 3, 4],
    ]
    with pytest.raises(ValueError, match='groups'):
        leave_one_group_out(['Europe', 'Europe'])


def test_make_splits_dispatch_and_errors():
    coords = four_blocks()
    assert [f.test.tolist() for f in make_splits('random', coords, k=2, seed=3)] == [
        f.test.tolist() for f in random_kfold(10, 2, seed=3)
    ]
    spatial = make_splits('spatial-block', coords, k=2, block_size=10.0)
    assert spatial[0].test.tolist() == [0, 1, 2, 3, 9]
    groups = ['x'] * 5 + ['y'] * 5
    loco = make_splits('leave-one-continent-out', coords, groups=groups)
    assert [f.test.tolist() for f in loco] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    with pytest.raises(ValueError, match='needs groups'):
        make_splits('leave-one-continent-out', coords)
    with pytest.raises(ValueError, match='unknown split'):
        make_splits('checkerboard', coords)
