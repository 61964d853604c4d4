import kornia
import numpy as np
import pytest
import torch

from satclip_tg.transforms import (
    SatCLIPBatchAugmentation,
    ViewParameters,
    centre_views,
    random_views,
    seeded_views,
)


def reference_view(image: torch.Tensor, view: ViewParameters, i: int, crop: int):
    """One image's view the plain way: slice, torch.flip, kornia's blur."""
    top, left = int(view.top[i]), int(view.left[i])
    out = image[:, top : top + crop, left : left + crop].float()
    if view.hflip[i]:
        out = out.flip(-1)
    if view.vflip[i]:
        out = out.flip(-2)
    sigma = float(view.sigma[i])
    if sigma > 0:
        out = kornia.filters.gaussian_blur2d(
            out[None], (3, 3), (sigma, sigma), border_type='reflect'
        )[0]
    return out


def test_seeded_views_are_a_pure_function_of_seed_tile_and_view() -> None:
    a = seeded_views(7, [5, 1, 9], 2, 256, 256, 224)
    b = seeded_views(7, [9, 5], 2, 256, 256, 224)
    # the same tile gets the same view whatever the batch it is in
    for field in ('top', 'left', 'hflip', 'vflip', 'sigma'):
        assert torch.equal(getattr(a, field)[[2, 0]], getattr(b, field))
    other_view = seeded_views(7, [5, 1, 9], 3, 256, 256, 224)
    other_seed = seeded_views(8, [5, 1, 9], 2, 256, 256, 224)
    assert not torch.equal(a.top, other_view.top) or not torch.equal(
        a.sigma, other_view.sigma
    )
    assert not torch.equal(a.sigma, other_seed.sigma)


def test_seeded_training_views_cover_the_ranges() -> None:
    views = seeded_views(0, np.arange(4000), 1, 40, 30, 24)
    assert int(views.top.min()) == 0 and int(views.top.max()) == 16
    assert int(views.left.min()) == 0 and int(views.left.max()) == 6
    assert 0.45 < float(views.hflip.float().mean()) < 0.55
    assert 0.45 < float(views.vflip.float().mean()) < 0.55
    assert 0.1 <= float(views.sigma.min()) and float(views.sigma.max()) <= 2.0
    plain = seeded_views(0, np.arange(10), 1, 40, 30, 24, flips=False, blur=False)
    assert not plain.hflip.any() and not plain.vflip.any()
    assert not plain.sigma.any()


def test_view_zero_is_the_centre_crop() -> None:
    views = seeded_views(3, [0, 1], 0, 32, 40, 16)
    centre = centre_views(2, 32, 40, 16)
    assert views.top.tolist() == centre.top.tolist() == [8, 8]
    assert views.left.tolist() == centre.left.tolist() == [12, 12]
    assert not views.hflip.any() and not views.vflip.any() and not views.sigma.any()
    with pytest.raises(ValueError, match='view'):
        seeded_views(0, [0], -1, 32, 32, 16)


@pytest.mark.parametrize('dtype', [torch.uint16, torch.uint8, torch.float32])
def test_render_matches_the_reference_per_image(dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    high = 65535 if dtype == torch.uint16 else 255
    values = torch.randint(0, high + 1, (5, 12, 20, 20), generator=generator)
    images = values.to(torch.int64).to(dtype) if dtype != torch.uint16 else None
    if images is None:
        images = torch.from_numpy(values.numpy().astype(np.uint16))
    aug = SatCLIPBatchAugmentation(crop_size=12, train=True, scale=100.0)
    views = seeded_views(1, np.arange(5), 1, 20, 20, 12)
    out = aug.render(images, views)
    assert out.shape == (5, 13, 12, 12) and out.dtype == torch.float32
    assert torch.equal(out[:, 10], torch.zeros(5, 12, 12))
    raw = torch.from_numpy(images.numpy().astype(np.float32))
    for i in range(5):
        expected = reference_view(raw[i], views, i, 12) / 100.0
        torch.testing.assert_close(out[i, :10], expected[:10], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(out[i, 11:], expected[10:], rtol=1e-5, atol=1e-4)


def test_uint16_values_above_the_signed_range_survive() -> None:
    images = torch.from_numpy(np.full((1, 1, 4, 4), 60000, dtype=np.uint16))
    aug = SatCLIPBatchAugmentation(
        crop_size=2, train=False, scale=None, insert_zero_b10=False
    )
    out = aug.render(images, centre_views(1, 4, 4, 2))
    assert torch.equal(out, torch.full((1, 1, 2, 2), 60000.0))


def test_chunks_do_not_change_the_result() -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(9, 12, 16, 16, generator=generator) * 10000
    views = random_views(9, 16, 16, 8, generator=torch.Generator().manual_seed(2))
    whole = SatCLIPBatchAugmentation(crop_size=8, train=True, chunk_size=256)
    pieces = SatCLIPBatchAugmentation(crop_size=8, train=True, chunk_size=2)
    assert torch.equal(whole.render(images, views), pieces.render(images, views))
    assert pieces.working_bytes(12, 2) < whole.working_bytes(12, 2)
    with pytest.raises(ValueError, match='chunk_size'):
        SatCLIPBatchAugmentation(crop_size=8, train=True, chunk_size=0)


def test_render_checks_its_input() -> None:
    aug = SatCLIPBatchAugmentation(crop_size=8, train=False)
    with pytest.raises(ValueError, match='smaller than crop_size'):
        aug.render(torch.zeros(1, 12, 4, 4), centre_views(1, 8, 8, 8))
    with pytest.raises(ValueError, match='12 bands'):
        aug.render(torch.zeros(1, 3, 8, 8), centre_views(1, 8, 8, 8))
    with pytest.raises(ValueError, match='2 views for a batch of 1'):
        aug.render(torch.zeros(1, 12, 8, 8), centre_views(2, 8, 8, 8))
