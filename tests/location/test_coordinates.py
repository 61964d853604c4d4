import numpy as np
import pytest
import torch

from satclip_tg import build_location_encoder, validate_coordinates


def test_valid_coordinates_pass_through() -> None:
    coords = torch.tensor([[-180.0, -90.0], [180.0, 90.0], [0.0, 0.0]])
    assert validate_coordinates(coords) is coords


@pytest.mark.parametrize(
    ('rows', 'count', 'first'),
    [
        ([[0.0, float('nan')], [1.0, 2.0]], 1, 0),
        ([[1.0, 2.0], [float('inf'), 0.0], [0.0, -91.0]], 2, 1),
        ([[0.0, 0.0], [0.0, 0.0], [181.0, 0.0]], 1, 2),
    ],
)
def test_bad_rows_are_counted_and_the_first_is_named(rows, count, first) -> None:
    coords = torch.tensor(rows)
    with pytest.raises(
        ValueError, match=rf'^{count} of {len(rows)} coordinate rows'
    ) as info:
        validate_coordinates(coords)
    assert f'first bad row is {first}' in str(info.value)


def test_swapped_lat_lon_gets_a_hint() -> None:
    with pytest.raises(ValueError, match=r'looks like \(lat, lon\)'):
        validate_coordinates(torch.tensor([[45.0, 120.0]]))


@pytest.mark.parametrize('shape', [(3,), (3, 3), (2, 3, 2)])
def test_wrong_shape(shape) -> None:
    with pytest.raises(ValueError, match=r'shape \(N, 2\)'):
        validate_coordinates(torch.zeros(shape))


def test_wrong_dtype_and_type() -> None:
    with pytest.raises(TypeError, match='floating-point'):
        validate_coordinates(torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match=r'torch\.Tensor'):
        validate_coordinates(np.zeros((3, 2)))  # type: ignore[arg-type]


def test_encoder_rejects_bad_input() -> None:
    encoder = build_location_encoder('wrap', 'linear', embed_dim=4)
    with pytest.raises(ValueError, match='1 of 2 coordinate rows'):
        encoder(torch.tensor([[0.0, 0.0], [0.0, 95.0]]))
