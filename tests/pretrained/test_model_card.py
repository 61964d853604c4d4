"""Model cards in the checkpoints satclip-tg writes."""

import datetime
import hashlib
import importlib.metadata
import pathlib

import torch
from tiny_fits import FIXTURE

from satclip_tg.features.manifest import FeatureCacheManifest
from satclip_tg.model_card import build_model_card, data_card, render_model_card
from satclip_tg.pretrained import get_pretrained_info, load_location_encoder
from satclip_tg.tasks.satclip import CHECKPOINT_KEY


def index_sha256() -> str:
    return hashlib.sha256((FIXTURE / 'index.csv').read_bytes()).hexdigest()


def test_card_is_in_the_checkpoint_after_a_fit(trained: pathlib.Path) -> None:
    checkpoint = torch.load(trained, map_location='cpu', weights_only=True)
    card = checkpoint[CHECKPOINT_KEY]['model_card']
    assert card['data']['tiles'] == 12
    assert card['data']['index_sha256'] == index_sha256()
    assert card['data']['train_tiles'] + card['data']['val_tiles'] == 12
    assert card['data']['datamodule'].endswith('S2100KDataModule')
    assert card['model']['location_encoder']['embed_dim'] == 8
    assert card['config']['hyper_parameters']['embed_dim'] == 8
    metrics = card['metrics']
    assert {'train_loss', 'val_loss', 'val_median_km'} <= set(metrics)
    assert all(isinstance(value, float) for value in metrics.values())
    assert card['training']['global_step'] == 1
    assert card['versions']['torch'] == torch.__version__
    assert card['versions']['torchgeo'] == importlib.metadata.version('torchgeo')
    created = datetime.datetime.fromisoformat(card['created'])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.UTC) - created).total_seconds() < 3600


def test_card_shows_in_pretrained_info_and_renders(trained: pathlib.Path) -> None:
    info = get_pretrained_info(load_location_encoder(trained))
    assert info is not None and info.model_card is not None
    text = render_model_card(info.model_card)
    assert text.startswith('# Model card: sphericalharmonics + siren, 8-d\n')
    assert '| tiles | 12 |' in text
    assert index_sha256() in text
    assert '| val_loss |' in text and '| train_loss |' in text
    assert f'| torch | {torch.__version__} |' in text
    for package in ('torchgeo', 'lightning', 'satclip-tg'):
        version = importlib.metadata.version(package)
        assert f'| {package} | {version} |' in text


def test_checkpoint_without_card_still_loads(
    trained: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    checkpoint = torch.load(trained, map_location='cpu', weights_only=True)
    del checkpoint[CHECKPOINT_KEY]['model_card']  # as written before cards
    old = tmp_path / 'old.ckpt'
    torch.save(checkpoint, old)
    points = torch.tensor([[2.35, 48.86], [-122.3, 47.6]])
    with torch.no_grad():
        torch.testing.assert_close(
            load_location_encoder(old)(points), load_location_encoder(trained)(points)
        )
    info = get_pretrained_info(load_location_encoder(old))
    assert info is not None and info.model_card is None


def test_card_without_trainer_has_no_data() -> None:
    class Module:
        def __init__(self) -> None:
            self.hparams = {
                'embed_dim': 4,
                'path': pathlib.Path('/x'),
                'scale': torch.tensor(2),
            }

    card = build_model_card(Module())
    assert card['data'] == {'datamodule': None}
    # Values safe loading refuses become plain types.
    assert card['config']['hyper_parameters'] == {
        'embed_dim': 4,
        'path': '/x',
        'scale': 2,
    }
    assert 'Not recorded' in render_model_card(card)


def test_data_card_of_a_feature_cache() -> None:
    manifest = FeatureCacheManifest(
        backbone='mosaiks',
        backbone_weights=None,
        backbone_args={},
        in_channels=3,
        backbone_sha256='b' * 64,
        feature_dim=16,
        views=2,
        view_seed=0,
        dtype='float16',
        tiles=20000,
        shard_size=4096,
        index_sha256='a' * 64,
        data={'root': 'data/bluemarble-demo'},
        satclip_tg_version='0.1.0',
    )

    class Cached:
        features = 'data/bluemarble-demo-features'

    cached = Cached()
    cached.manifest = manifest  # type: ignore[attr-defined]
    card = data_card(cached)
    assert card['source'] == 'feature-cache manifest'
    assert card['tiles'] == 20000
    assert card['index_sha256'] == 'a' * 64
    assert card['root'] == 'data/bluemarble-demo'
    assert card['features'] == 'data/bluemarble-demo-features'


def test_card_of_a_cli_run_holds_its_config(tmp_path: pathlib.Path) -> None:
    from satclip_tg.cli import main

    root = pathlib.Path(__file__).resolve().parents[2]
    args = [
        'fit',
        f'--config={root / "configs" / "sh_l10_resnet18.yaml"}',
        '--model.init_args.weights=null',
        '--trainer.accelerator=cpu',
        '--trainer.devices=1',
        '--trainer.max_steps=1',
        '--trainer.limit_val_batches=1',
        '--trainer.logger=CSVLogger',
        f'--trainer.logger.save_dir={tmp_path}',
        '--trainer.enable_progress_bar=false',
        f'--trainer.default_root_dir={tmp_path}',
        f'--data.init_args.root={FIXTURE}',
        '--data.init_args.batch_size=4',
        '--data.init_args.num_workers=0',
        '--data.init_args.crop_size=16',
    ]
    assert main(args) == 0
    (path,) = tmp_path.glob('**/*.ckpt')
    card = torch.load(path, weights_only=True)[CHECKPOINT_KEY]['model_card']
    config = card['config']['lightning_config']
    assert 'S2100KDataModule' in config and 'max_steps: 1' in config
    assert card['data']['tiles'] == 12 and 'train_loss' in card['metrics']
    assert '```yaml' in render_model_card(card)
