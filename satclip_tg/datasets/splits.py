"""Cross-validation splits: random, spatial blocks, leave one continent out.

Every function returns a list of `Fold` objects whose ``test`` index arrays
partition ``0 .. N-1``; each fold's ``train`` is the complement of its
``test``. All of them are deterministic given their seed.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    'SPLITS',
    'Fold',
    'SplitKind',
    'block_ids',
    'group_kfold',
    'leave_one_group_out',
    'make_splits',
    'random_kfold',
    'spatial_block_kfold',
]

#: The split strategies by name.
SplitKind = Literal['random', 'spatial-block', 'leave-one-continent-out']
SPLITS: tuple[str, ...] = get_args(SplitKind)


@dataclass(frozen=True)
class Fold:
    """One train/test split of ``N`` samples.

    Attributes:
        name: A label, e.g. ``'fold 2'`` or the held-out continent.
        train: Sorted indices of the training samples.
        test: Sorted indices of the test samples.
    """

    name: str
    train: NDArray[np.intp]
    test: NDArray[np.intp]


def _folds_from_assignment(
    assignment: NDArray[np.intp], names: Sequence[str]
) -> list[Fold]:
    index = np.arange(len(assignment))
    return [
        Fold(name, index[assignment != fold], index[assignment == fold])
        for fold, name in enumerate(names)
    ]


def _check_k(k: int, available: int, what: str) -> None:
    if k < 2:
        raise ValueError(f'need at least 2 folds, got {k}')
    if available < k:
        raise ValueError(f'cannot make {k} folds from {available} {what}')


def random_kfold(n: int, k: int = 5, seed: int = 0) -> list[Fold]:
    """Random K-fold: a seeded permutation cut into ``k`` near-equal parts.

    Args:
        n: Number of samples.
        k: Number of folds.
        seed: Seed of the permutation.

    Returns:
        ``k`` folds; test sizes differ by at most one.

    Raises:
        ValueError: If ``k < 2`` or ``n < k``.
    """
    _check_k(k, n, 'samples')
    permutation = np.random.default_rng(seed).permutation(n)
    assignment = np.empty(n, dtype=np.intp)
    for fold, part in enumerate(np.array_split(permutation, k)):
        assignment[part] = fold
    return _folds_from_assignment(assignment, [f'fold {i}' for i in range(k)])


def group_kfold(groups: ArrayLike, k: int = 5, seed: int = 0) -> list[Fold]:
    """K-fold over groups: all samples of a group fall in the same fold.

    Groups are shuffled with ``seed``, ordered by decreasing size (ties keep
    the shuffled order) and each is given to the fold with the fewest
    samples so far (the first such fold on ties), which balances the fold
    sizes.

    Args:
        groups: ``(N,)`` group labels of any comparable type.
        k: Number of folds.
        seed: Seed of the shuffle.

    Returns:
        ``k`` folds.

    Raises:
        ValueError: If ``k < 2`` or there are fewer than ``k`` groups.
    """
    labels, inverse, counts = np.unique(
        np.asarray(groups), return_inverse=True, return_counts=True
    )
    _check_k(k, len(labels), 'groups')
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    order = shuffled[np.argsort(-counts[shuffled], kind='stable')]
    sizes = np.zeros(k, dtype=np.int64)
    group_fold = np.empty(len(labels), dtype=np.intp)
    for group in order:
        fold = int(np.argmin(sizes))
        group_fold[group] = fold
        sizes[fold] += counts[group]
    return _folds_from_assignment(
        group_fold[inverse.ravel()], [f'fold {i}' for i in range(k)]
    )


def block_ids(coords: ArrayLike, block_size: float = 10.0) -> NDArray[np.int64]:
    """The latitude-longitude block of each point.

    Blocks are ``block_size`` x ``block_size`` degree cells anchored at
    (-180, -90); the point at longitude 180 or latitude 90 belongs to the last
    cell.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        block_size: Cell size in degrees.

    Returns:
        ``(N,)`` block numbers, ``column * rows + row``.

    Raises:
        ValueError: If ``block_size`` is not positive.
    """
    if not block_size > 0:
        raise ValueError(f'block_size must be positive, got {block_size}')
    points = np.asarray(coords, dtype=np.float64)
    columns = int(np.ceil(360.0 / block_size))
    rows = int(np.ceil(180.0 / block_size))
    column = np.clip(np.floor((points[:, 0] + 180.0) / block_size), 0, columns - 1)
    row = np.clip(np.floor((points[:, 1] + 90.0) / block_size), 0, rows - 1)
    return (column.astype(np.int64) * rows + row.astype(np.int64)).astype(np.int64)


def spatial_block_kfold(
    coords: ArrayLike, k: int = 5, block_size: float = 10.0, seed: int = 0
) -> list[Fold]:
    """Spatial block K-fold: `group_kfold` over the cells of `block_ids`.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        k: Number of folds.
        block_size: Cell size in degrees.
        seed: Seed of the block shuffle.

    Returns:
        ``k`` folds.
    """
    return group_kfold(block_ids(coords, block_size), k, seed)


def leave_one_group_out(groups: ArrayLike) -> list[Fold]:
    """One fold per group, holding that group out.

    Args:
        groups: ``(N,)`` group labels (e.g. continent names).

    Returns:
        One fold per distinct group, in sorted order, named after the group.

    Raises:
        ValueError: If there are fewer than two groups.
    """
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    if len(labels) < 2:
        raise ValueError(f'leaving one group out needs 2 groups, got {len(labels)}')
    return _folds_from_assignment(
        inverse.ravel().astype(np.intp), [str(label) for label in labels]
    )


def make_splits(
    kind: str,
    coords: ArrayLike,
    *,
    k: int = 5,
    block_size: float = 10.0,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> list[Fold]:
    """Build folds by strategy name.

    Args:
        kind: ``'random'``, ``'spatial-block'`` or ``'leave-one-continent-out'``.
        coords: ``(N, 2)`` (lon, lat) in degrees.
        k: Number of folds (ignored by leave-one-continent-out).
        block_size: Block size in degrees for ``'spatial-block'``.
        seed: Seed.
        groups: The continent of each point, required by
            ``'leave-one-continent-out'`` (see `continent_of`).

    Returns:
        The folds.

    Raises:
        ValueError: For an unknown ``kind`` or missing ``groups``.
    """
    points = np.asarray(coords, dtype=np.float64)
    if kind == 'random':
        return random_kfold(len(points), k, seed)
    if kind == 'spatial-block':
        return spatial_block_kfold(points, k, block_size, seed)
    if kind == 'leave-one-continent-out':
        if groups is None:
            raise ValueError('leave-one-continent-out needs groups (continents)')
        return leave_one_group_out(groups)
    raise ValueError(f'unknown split {kind!r}; choose from {", ".join(SPLITS)}')
