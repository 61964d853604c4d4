"""The compiled spherical-harmonics kernel: tiling edge cases and output memory."""

import copy
import pickle
import threading

import numba
import numpy as np
import pytest
import torch

from satclip_tg.location.encodings._numba_transpose import transpose8_store
from satclip_tg.location.encodings._output_memory import ReusableOutputMemory
from satclip_tg.location.encodings.spherical_harmonics import SphericalHarmonics
from satclip_tg.testing import sample_coordinates


@numba.njit(cache=False)
def _transpose(dst, dst_start, dst_stride, src, src_start, src_stride):  # type: ignore[no-untyped-def]
    transpose8_store(dst, dst_start, dst_stride, src, src_start, src_stride)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_transpose8_store_moves_a_tile(dtype) -> None:
    src = np.arange(200, dtype=dtype)
    dst = np.full(200, -1, dtype=dtype)
    _transpose(dst, 5, 11, src, 3, 9)
    tile = np.array([[src[3 + i * 9 + j] for j in range(8)] for i in range(8)])
    moved = np.array([[dst[5 + j * 11 + i] for i in range(8)] for j in range(8)])
    np.testing.assert_array_equal(moved, tile.T)
    touched = {5 + j * 11 + i for i in range(8) for j in range(8)}
    untouched = [k for k in range(200) if k not in touched]
    assert (dst[untouched] == -1).all()


# Block edges (64 points, tasks of 8 blocks), tile edges (8 columns) and
# degrees whose L^2 is not a multiple of 8.
@pytest.mark.parametrize('points', [1, 7, 8, 63, 64, 65, 513, 600])
@pytest.mark.parametrize('degrees', [1, 2, 3, 5, 12])
def test_kernel_matches_torch_path_at_tile_edges(points, degrees) -> None:
    coords = sample_coordinates(n=points, dtype=torch.float64)[:points]
    expected = SphericalHarmonics(degrees, backend='torch')(coords)
    fast = SphericalHarmonics(degrees, backend='numba')
    torch.testing.assert_close(fast(coords), expected, rtol=0, atol=1e-12)
    single = fast(coords.float())
    assert single.dtype == torch.float32 and single.is_contiguous()
    rounded = SphericalHarmonics(degrees, backend='torch')(coords.float().double())
    torch.testing.assert_close(single.double(), rounded, rtol=0, atol=1e-6)


def _encoding_with_small_reuse(degrees: int = 6) -> SphericalHarmonics:
    encoding = SphericalHarmonics(degrees, backend='numba')
    encoding._output_memory = ReusableOutputMemory(min_bytes=0)
    return encoding


def test_released_output_memory_is_reused() -> None:
    encoding = _encoding_with_small_reuse()
    coords = sample_coordinates(n=100)
    first = encoding(coords)
    address, expected = first.data_ptr(), first.clone()
    del first
    second = encoding(coords)
    assert second.data_ptr() == address
    torch.testing.assert_close(second, expected, rtol=0, atol=0)
    # A smaller output fits in the same memory.
    del second
    assert encoding(coords[:10]).data_ptr() == address


@pytest.mark.parametrize('keep', ['tensor', 'view', 'numpy'])
def test_output_in_use_is_never_overwritten(keep) -> None:
    encoding = _encoding_with_small_reuse()
    coords = sample_coordinates(n=100)
    other = coords.flip(0)
    out = encoding(coords)
    expected = out.clone()
    held = {'tensor': out, 'view': out[5:, 3:], 'numpy': out.numpy()}[keep]
    del out
    again = encoding(other)
    torch.testing.assert_close(again, encoding(other).clone(), rtol=0, atol=0)
    held_tensor = torch.as_tensor(held)
    reference = {'tensor': expected, 'view': expected[5:, 3:], 'numpy': expected}
    torch.testing.assert_close(held_tensor, reference[keep], rtol=0, atol=0)


def test_output_memory_limits_and_switch() -> None:
    memory = ReusableOutputMemory(min_bytes=1000, max_bytes=4000)
    small = memory.empty(10, 10, torch.float32)  # 400 bytes: not kept
    assert memory._memory is None
    del small
    kept = memory.empty(20, 20, torch.float64)  # 3200 bytes: kept
    assert memory._memory is not None and kept.dtype == torch.float64
    del kept
    memory.empty(30, 30, torch.float64)  # 7200 bytes: above the limit
    assert memory._memory is not None and memory._memory.nbytes < 7200
    memory.release()
    assert memory._memory is None

    off = SphericalHarmonics(4, backend='numba', reuse_output_memory=False)
    off._output_memory = ReusableOutputMemory(min_bytes=0)
    off(sample_coordinates(n=50))
    assert off._output_memory._memory is None


def test_copies_and_pickles_do_not_share_output_memory() -> None:
    encoding = _encoding_with_small_reuse()
    coords = sample_coordinates(n=100)
    out = encoding(coords)
    for clone in (copy.deepcopy(encoding), pickle.loads(pickle.dumps(encoding))):
        assert clone._output_memory is not encoding._output_memory
        assert clone._output_memory._memory is None
        torch.testing.assert_close(clone(coords), out, rtol=0, atol=0)


def test_concurrent_calls_get_separate_memory() -> None:
    encoding = _encoding_with_small_reuse()
    coords = sample_coordinates(n=200)
    encoding(coords)
    if numba.threading_layer() == 'workqueue':
        pytest.skip("numba's workqueue threading layer cannot run in two threads")
    barrier = threading.Barrier(4)
    outputs: list[torch.Tensor] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        result = encoding(coords)
        with lock:
            outputs.append(result)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({out.data_ptr() for out in outputs}) == 4
    for out in outputs:
        torch.testing.assert_close(out, outputs[0], rtol=0, atol=0)


def test_output_saved_for_backward_is_not_overwritten() -> None:
    from satclip_tg import build_location_encoder

    torch.manual_seed(0)
    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=8,
        positional_encoding_args={'legendre_polys': 6},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1, 'dropout': 0.0},
    )
    encoder.positional_encoding._output_memory = ReusableOutputMemory(min_bytes=0)
    coords = sample_coordinates(n=100)

    def gradient(interleave: bool) -> torch.Tensor:
        encoder.zero_grad()
        loss = encoder(coords).square().sum()
        if interleave:  # encode other points while the graph holds the output
            encoder(coords.flip(0)).sum()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in encoder.parameters()])

    torch.testing.assert_close(gradient(True), gradient(False), rtol=0, atol=0)


def test_encode_into_rounds_once_from_float64_coordinates() -> None:
    encoding = SphericalHarmonics(9, convention='orthonormal')
    assert encoding.convention_parameters == (1.0, 0.0, 1.0)
    coords = sample_coordinates(n=70, dtype=torch.float64)
    out = torch.full((coords.shape[0], 81), float('nan'), dtype=torch.float32)
    encoding.encode_into(coords, out)
    torch.testing.assert_close(out, encoding(coords).float(), rtol=0, atol=0)
