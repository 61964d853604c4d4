import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from satclip_tg.losses import ClipLoss


def reference_loss(images, locations, scale):
    images, locations = F.normalize(images, dim=1), F.normalize(locations, dim=1)
    logits = scale * images @ locations.T
    targets = torch.arange(len(images))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def test_single_process_matches_the_definition() -> None:
    torch.manual_seed(0)
    images, locations = torch.randn(8, 4), torch.randn(8, 4)
    scale = torch.tensor(1 / 0.07)
    loss = ClipLoss()(images, locations, scale)
    torch.testing.assert_close(loss, reference_loss(images, locations, scale))
    aligned = ClipLoss()(images, images.clone(), torch.tensor(100.0))
    assert aligned < 0.05 < loss
    assert math.isclose(
        float(ClipLoss()(images, locations, scale)),
        float(ClipLoss()(locations, images, scale)),
        rel_tol=1e-6,
    )


def _model_and_data():
    torch.manual_seed(0)
    image_model = torch.nn.Linear(6, 5)
    location_model = torch.nn.Linear(3, 5)
    images, locations = torch.randn(8, 6), torch.randn(8, 3)
    return image_model, location_model, images, locations


def _worker(rank: int, world_size: int, init_file: str, out_file: str, gather: bool):
    dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size
    )
    try:
        image_model, location_model, images, locations = _model_and_data()
        shard = slice(rank * 4, (rank + 1) * 4)
        loss = ClipLoss(gather_across_processes=gather)(
            image_model(images[shard]),
            location_model(locations[shard]),
            torch.tensor(5.0),
        )
        loss.backward()
        # What DDP does: average the loss for logging and the gradients.
        grads = [
            p.grad for p in [*image_model.parameters(), *location_model.parameters()]
        ]
        for tensor in [loss.detach(), *grads]:
            dist.all_reduce(tensor)
            tensor /= world_size
        if rank == 0:
            torch.save({'loss': loss.detach(), 'grads': grads}, out_file)
    finally:
        dist.destroy_process_group()


def _run_two_ranks(tmp_path, gather):
    out_file = tmp_path / f'out-{gather}.pt'
    mp.spawn(
        _worker,
        args=(2, str(tmp_path / f'init-{gather}'), str(out_file), gather),
        nprocs=2,
        join=True,
    )
    return torch.load(out_file, weights_only=True)


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed is unavailable')
def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path) -> None:
    image_model, location_model, images, locations = _model_and_data()
    loss = ClipLoss()(image_model(images), location_model(locations), torch.tensor(5.0))
    loss.backward()
    expected = [
        p.grad for p in [*image_model.parameters(), *location_model.parameters()]
    ]

    os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    gathered = _run_two_ranks(tmp_path, gather=True)
    torch.testing.assert_close(gathered['loss'], loss.detach(), rtol=1e-5, atol=1e-6)
    for actual, wanted in zip(gathered['grads'], expected, strict=True):
        torch.testing.assert_close(actual, wanted, rtol=1e-5, atol=1e-6)

    # Without gathering each rank only sees its own negatives: a different loss.
    local = _run_two_ranks(tmp_path, gather=False)
    assert not torch.allclose(local['loss'], loss.detach(), rtol=1e-3)
