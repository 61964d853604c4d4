import itertools
import math

import pytest
import timm
import torch
from torchvision.models._api import WeightsEnum

from satclip_tg import build_location_encoder
from satclip_tg.image import ImageEncoder
from satclip_tg.tasks import SatCLIPTask
from satclip_tg.tasks.satclip import CHECKPOINT_KEY

TINY = {
    'model': 'resnet18',
    'in_channels': 4,
    'positional_encoding_args': {'legendre_polys': 4},
    'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1},
    'embed_dim': 8,
}


def batch(size: int = 6, channels: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    points = torch.stack(
        [
            torch.rand(size, generator=generator) * 360 - 180,
            torch.rand(size, generator=generator) * 180 - 90,
        ],
        dim=1,
    )
    return {
        'image': torch.rand(size, channels, 32, 32, generator=generator),
        'point': points,
    }


def test_training_step_and_frozen_backbone() -> None:
    task = SatCLIPTask(**TINY)
    task.train()
    encoder = task.image_encoder
    assert isinstance(encoder, ImageEncoder)
    # The frozen backbone stays in eval mode; its projection trains.
    assert not encoder.model.training
    assert encoder.projection.training
    trainable = {name for name, p in task.named_parameters() if p.requires_grad}
    assert 'image_encoder.model.fc.weight' in trainable
    assert 'image_encoder.model.conv1.weight' not in trainable
    assert 'logit_scale' in trainable
    assert any(name.startswith('location_encoder.') for name in trainable)
    loss = task.training_step(batch(), 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert task.logit_scale.grad is not None
    assert math.isclose(float(task.logit_scale), math.log(1 / 0.07), rel_tol=1e-6)


def test_unfrozen_backbone_trains_everything() -> None:
    task = SatCLIPTask(**TINY, freeze_backbone=False)
    task.train()
    assert task.image_encoder.model.training
    assert all(p.requires_grad for p in task.image_encoder.parameters())


def test_logit_scale_is_clamped() -> None:
    task = SatCLIPTask(**TINY, max_logit_scale=10.0)
    with torch.no_grad():
        task.logit_scale.fill_(10.0)
    task.training_step(batch(), 0)
    assert math.isclose(float(task.logit_scale), math.log(10.0), rel_tol=1e-6)


def test_band_mismatch_is_explained() -> None:
    task = SatCLIPTask(**TINY)
    with pytest.raises(ValueError, match=r'in_channels.*insert_zero_b10'):
        task.training_step(batch(channels=3), 0)


def test_weight_decay_groups() -> None:
    task = SatCLIPTask(**TINY, freeze_backbone=False)
    optimizer = task.configure_optimizers()
    decay, no_decay = optimizer.param_groups
    assert decay['weight_decay'] == 0.01 and no_decay['weight_decay'] == 0.0
    no_decay_ids = {id(p) for p in no_decay['params']}
    assert id(task.logit_scale) in no_decay_ids
    assert id(task.image_encoder.model.bn1.weight) in no_decay_ids
    assert id(task.image_encoder.model.fc.bias) in no_decay_ids
    assert all(p.ndim >= 2 for p in decay['params'])


def test_validation_metrics_are_logged() -> None:
    task = SatCLIPTask(**TINY)
    logged = {}
    task.log_dict = lambda metrics, **kwargs: logged.update(metrics)
    task.log = lambda name, value, **kwargs: logged.update({name: value})
    task.eval()
    with torch.no_grad():
        task.validation_step(batch(), 0)
        task.on_validation_epoch_end()
    for name in (
        'val_loss',
        'val_img2loc_top1',
        'val_img2loc_top5',
        'val_loc2img_top1',
        'val_loc2img_top5',
        'val_median_km',
        'val_random_median_km',
    ):
        assert name in logged, name
    assert (
        0 <= float(logged['val_img2loc_top1']) <= float(logged['val_img2loc_top5']) <= 1
    )
    assert 0 <= float(logged['val_median_km']) <= 20016
    assert 0 < float(logged['val_random_median_km']) <= 20016


def test_checkpoint_rebuilds_the_location_encoder_alone() -> None:
    task = SatCLIPTask(**TINY)
    checkpoint = {'state_dict': task.state_dict()}
    task.on_save_checkpoint(checkpoint)
    entry = checkpoint[CHECKPOINT_KEY]['location_encoder']
    prefix = entry['state_dict_prefix']
    encoder = build_location_encoder(**entry['config'])
    encoder.load_state_dict(
        {
            k[len(prefix) :]: v
            for k, v in checkpoint['state_dict'].items()
            if k.startswith(prefix)
        }
    )
    points = batch()['point']
    task.eval()
    torch.testing.assert_close(encoder.eval()(points), task.location_encoder(points))


def test_backbone_weights_from_a_local_checkpoint(tmp_path) -> None:
    source = timm.create_model('resnet18', in_chans=4, num_classes=10)
    path = tmp_path / 'backbone.pth'
    torch.save(
        {'state_dict': {f'model.{k}': v for k, v in source.state_dict().items()}}, path
    )
    task = SatCLIPTask(**TINY, weights=str(path))
    torch.testing.assert_close(
        task.image_encoder.model.conv1.weight, source.conv1.weight
    )
    # The projection is new: it has the embedding size, not the classifier's.
    assert task.image_encoder.model.fc.weight.shape == (8, 512)


def test_backbone_weights_by_torchgeo_name_without_download(monkeypatch) -> None:
    source = timm.create_model('resnet18', in_chans=13, num_classes=1000)

    def fake_get_state_dict(self, *args, **kwargs):
        return source.state_dict()

    monkeypatch.setattr(WeightsEnum, 'get_state_dict', fake_get_state_dict)
    task = SatCLIPTask(
        **{**TINY, 'in_channels': 13},
        weights='ResNet18_Weights.SENTINEL2_ALL_MOCO',
    )
    torch.testing.assert_close(
        task.image_encoder.model.conv1.weight, source.conv1.weight
    )


@pytest.mark.parametrize(
    ('weights', 'in_channels', 'match'),
    [
        ('NoSuch_Weights.ANYTHING', 4, 'neither an existing checkpoint'),
        ('ResNet50_Weights.SENTINEL2_ALL_MOCO', 13, 'for a resnet50 backbone'),
        ('ResNet18_Weights.SENTINEL2_ALL_MOCO', 4, 'expect 13 input bands'),
    ],
)
def test_bad_backbone_weights(weights, in_channels, match) -> None:
    with pytest.raises(ValueError, match=match):
        SatCLIPTask(**{**TINY, 'in_channels': in_channels}, weights=weights)


def test_unknown_backbone_lists_the_registered_ones() -> None:
    with pytest.raises(
        ValueError, match=r'unknown image backbone.*vit_small_patch16_224'
    ):
        SatCLIPTask(**{**TINY, 'model': 'resnet19'})


def test_cosine_schedule_with_warmup() -> None:
    task = SatCLIPTask(**TINY, lr_schedule='cosine', warmup_steps=2, lr=1.0, min_lr=0.1)

    class FakeTrainer:
        estimated_stepping_batches = 12

    task.trainer = FakeTrainer()  # type: ignore[assignment]
    config = task.configure_optimizers()
    scheduler = config['lr_scheduler']['scheduler']
    rates = []
    for _ in range(12):
        rates.append(config['optimizer'].param_groups[0]['lr'])
        config['optimizer'].step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.5) and rates[1] == pytest.approx(1.0)
    assert rates[2] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.1, abs=0.05)
    assert all(a >= b for a, b in itertools.pairwise(rates[1:]))
