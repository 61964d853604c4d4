"""Checks of labelled points: a clear error naming the bad rows, never a silent cast.

Used for the points of a downstream data set (`load_points`) and of a CSV file
(`read_point_csv`): coordinates must be finite (lon, lat) degrees within
[-180, 180] x [-90, 90]; regression targets finite numbers; class labels
integers in ``[0, num_classes)``. A cast would otherwise turn ``1.7`` into
class 1 and NaN into an arbitrary integer without a word.
"""

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    'MAX_LISTED',
    'Problem',
    'bad_rows_error',
    'check_point_labels',
    'coordinate_problem',
    'label_problem',
]

#: How many problems an error message lists before ``... and N more``.
MAX_LISTED = 10

#: One bad cell: ``(row, column, what is wrong)``.
Problem = tuple[int, str, str]

_LIMITS = {'lon': 180.0, 'lat': 90.0}


def coordinate_problem(column: str, value: float) -> str | None:
    """What is wrong with one coordinate, or ``None``.

    Args:
        column: ``'lon'`` or ``'lat'``.
        value: The value in degrees.

    Returns:
        The problem, or ``None`` when the value is a valid coordinate.
    """
    if not math.isfinite(value):
        return f'{value} is not a finite number'
    limit = _LIMITS[column]
    if abs(value) > limit:
        return f'{value:g} is outside [-{limit:g}, {limit:g}] degrees'
    return None


def label_problem(
    value: float, kind: str, num_classes: int | None = None
) -> str | None:
    """What is wrong with one label, or ``None``.

    Args:
        value: The label as a number.
        kind: ``'regression'`` or ``'classification'``.
        num_classes: The number of classes, if known (classification).

    Returns:
        The problem, or ``None`` when the label is valid.
    """
    if not math.isfinite(value):
        return f'{value} is not a finite number'
    if kind == 'regression':
        return None
    if value != round(value):
        return f'{value:g} is not an integer class index'
    if value < 0:
        return f'{value:g} is a negative class index'
    if num_classes is not None and value >= num_classes:
        return f'{value:g} is not below num_classes = {num_classes}'
    return None


def bad_rows_error(
    source: str, problems: Sequence[Problem], numbering: str, row_word: str = 'row'
) -> ValueError:
    """The error for the bad cells of a points file or array.

    Args:
        source: What was read, e.g. a path or ``"task 'x'"``.
        problems: The bad cells, in row order.
        numbering: How rows are counted, e.g. ``'counting from 0'``.
        row_word: What a row is called in the message (``'row'``,
            ``'line'``).

    Returns:
        A `ValueError` giving the number of bad rows and the first
        `MAX_LISTED` problems with their row and column.
    """
    rows = len({row for row, _, _ in problems})
    listed = '; '.join(
        f'{row_word} {row}, column {column!r}: {what}'
        for row, column, what in problems[:MAX_LISTED]
    )
    more = len(problems) - MAX_LISTED
    if more > 0:
        listed += f'; ... and {more} more'
    plural = 's' if rows != 1 else ''
    return ValueError(f'{source}: {rows} bad row{plural} ({numbering}): {listed}')


def check_point_labels(
    coords: ArrayLike,
    labels: ArrayLike,
    kind: str,
    num_classes: int | None = None,
    source: str = 'points',
) -> None:
    """Check coordinates and labels, naming every bad row (counted from 0).

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        labels: ``(N,)`` regression targets or class indices.
        kind: ``'regression'`` or ``'classification'``.
        num_classes: The number of classes, if known (classification).
        source: What the points are, for the message.

    Raises:
        ValueError: If the shapes disagree, or naming the bad rows, their
            columns and the number of bad rows.
    """
    points = np.asarray(coords, dtype=np.float64)
    values = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or values.shape != (len(points),):
        raise ValueError(
            f'{source}: coords must be (N, 2) and labels (N,), got '
            f'{points.shape} and {values.shape}'
        )
    if values.dtype.kind not in 'biuf':
        raise ValueError(f'{source}: labels must be numbers, got {values.dtype}')
    numbers = values.astype(np.float64)
    # Only rows with a problem are visited: fast for the usual, clean case.
    suspect = ~np.isfinite(points).all(axis=1)
    suspect |= np.abs(points[:, 0]) > 180
    suspect |= np.abs(points[:, 1]) > 90
    suspect |= ~np.isfinite(numbers)
    if kind == 'classification':
        suspect |= (numbers != np.round(numbers)) | (numbers < 0)
        if num_classes is not None:
            suspect |= numbers >= num_classes
    problems: list[Problem] = []
    for row in np.flatnonzero(suspect):
        for column, value in zip(('lon', 'lat'), points[row], strict=True):
            what = coordinate_problem(column, float(value))
            if what is not None:
                problems.append((int(row), column, what))
        what = label_problem(float(numbers[row]), kind, num_classes)
        if what is not None:
            problems.append((int(row), 'label', what))
    if problems:
        raise bad_rows_error(source, problems, 'rows counted from 0')
