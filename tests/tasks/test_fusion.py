"""Location embeddings as features: the transform, the fusion tasks, the config."""

import csv
import pathlib

import numpy as np
import pytest
import rasterio
import rasterio.warp
import torch
from matplotlib import pyplot as plt
from rasterio.transform import from_origin
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset
from torchgeo.datasets.utils import stack_samples
from torchgeo.samplers import GriddedPatchSampler

import satclip_tg
from satclip_tg.cli import main
from satclip_tg.datamodules import BlueMarbleLandCoverDataModule
from satclip_tg.datasets import BlueMarbleLandCover
from satclip_tg.tasks import LocationFusionClassification, LocationFusionRegression
from satclip_tg.transforms import LocationEmbedding

CONFIG = pathlib.Path(__file__).parents[2] / 'configs' / 'fusion_landcover.yaml'
UTM = 'EPSG:32632'
# A tiny timm model (about 0.4 M parameters) so each test stays fast.
IMAGE_MODEL = 'test_resnet'


def tiny_encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return satclip_tg.build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=8,
        positional_encoding_args={'legendre_polys': 2},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
    )


def reference(encoder: torch.nn.Module, lonlat: torch.Tensor) -> torch.Tensor:
    encoder.eval()
    with torch.no_grad():
        out: torch.Tensor = encoder(lonlat.float())
    return out


@pytest.fixture
def utm_raster(tmp_path: pathlib.Path) -> RasterDataset:
    """Two 32 x 32 RGB GeoTIFFs side by side in UTM zone 32N (metres)."""
    folder = tmp_path / 'raster'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, west in enumerate((500_000.0, 500_320.0)):
        profile = {
            'driver': 'GTiff',
            'height': 32,
            'width': 32,
            'count': 3,
            'dtype': 'uint8',
            'crs': UTM,
            'transform': from_origin(west, 5_000_320.0, 10.0, 10.0),
        }
        with rasterio.open(folder / f'tile_{i}.tif', 'w', **profile) as dst:
            dst.write(rng.integers(0, 255, (3, 32, 32), dtype=np.uint8))
    return RasterDataset(paths=str(folder))


def geo_batch(dataset: RasterDataset, size: int = 4) -> dict[str, torch.Tensor]:
    sampler = GriddedPatchSampler(dataset, size=16, stride=16)
    loader = DataLoader(
        dataset, sampler=sampler, batch_size=size, collate_fn=stack_samples
    )
    batch: dict[str, torch.Tensor] = next(iter(loader))
    return batch


def utm_centres(bounds: torch.Tensor) -> torch.Tensor:
    """(lon, lat) of the centres of (B, 9) TorchGeo bounds, by rasterio."""
    x = ((bounds[:, 0] + bounds[:, 1]) / 2).tolist()
    y = ((bounds[:, 3] + bounds[:, 4]) / 2).tolist()
    lon, lat = rasterio.warp.transform(UTM, 'EPSG:4326', x, y)
    return torch.tensor([lon, lat], dtype=torch.float64).T


# -- transform -----------------------------------------------------------------


def test_transform_embeds_points_of_samples_and_batches() -> None:
    encoder = tiny_encoder()
    encoder.train()  # the transform must switch dropout off itself
    transform = LocationEmbedding(encoder)
    points = torch.tensor([[8.55, 47.37], [-122.3, 47.6], [151.2, -33.9]])
    expected = reference(tiny_encoder(), points)

    batch = transform({'point': points.clone()})
    assert batch['location_embedding'].dtype == torch.float32
    assert batch['location_embedding'].shape == (3, 8)
    torch.testing.assert_close(batch['location_embedding'], expected)
    assert not batch['location_embedding'].requires_grad

    sample = transform({'point': points[1], 'image': torch.zeros(3, 4, 4)})
    assert sample['location_embedding'].shape == (8,)
    torch.testing.assert_close(sample['location_embedding'], expected[1])

    transform.train()
    assert not transform.encoder.training
    assert not any(p.requires_grad for p in transform.encoder.parameters())


def test_transform_on_a_geodataset_reprojects_bounds_centres(utm_raster) -> None:
    encoder = tiny_encoder()
    utm_raster.transforms = LocationEmbedding(encoder, key='loc', crs=utm_raster.crs)
    batch = geo_batch(utm_raster)
    assert batch['loc'].shape == (4, 8)
    centres = utm_centres(batch['bounds'])
    # Near 9 E, 45 N: the centre of UTM 32N at 5,000 km north.
    assert torch.allclose(
        centres[0], torch.tensor([9.0, 45.15], dtype=torch.float64), atol=0.05
    )
    torch.testing.assert_close(batch['loc'], reference(tiny_encoder(), centres))

    # The same on a collated batch (a data module's aug), CRS given by name
    # or carried by the sample itself.
    del batch['loc']
    by_name = LocationEmbedding(encoder, crs=UTM)(dict(batch))
    torch.testing.assert_close(
        by_name['location_embedding'], reference(encoder, centres)
    )
    carried = LocationEmbedding(encoder)(dict(batch, crs=UTM))
    torch.testing.assert_close(
        carried['location_embedding'], by_name['location_embedding']
    )


def test_transform_errors_say_what_is_missing() -> None:
    transform = LocationEmbedding(tiny_encoder())
    with pytest.raises(ValueError, match=r"neither 'point'.*'bounds'"):
        transform({'image': torch.zeros(3, 4, 4)})
    bounds = torch.tensor([0.0, 10.0, 1.0, 0.0, 10.0, 1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r'crs=dataset\.crs'):
        transform({'bounds': bounds})
    with pytest.raises(ValueError, match=r'shape \(3,\)'):
        transform({'point': torch.zeros(3)})
    with pytest.raises(ValueError, match='cannot read the CRS'):
        LocationEmbedding(tiny_encoder(), crs='EPSG:not-a-code')
    with pytest.raises(TypeError, match=r'nn\.Module or a checkpoint'):
        LocationEmbedding(3)  # type: ignore[arg-type]


def test_transform_loads_an_encoder_by_path(tmp_path) -> None:
    encoder = tiny_encoder()
    path = tmp_path / 'encoder.pt'
    torch.save(encoder.state_dict(), path)
    transform = LocationEmbedding(str(path))
    points = torch.tensor([[10.0, 20.0]])
    out = transform({'point': points})['location_embedding']
    torch.testing.assert_close(out, reference(encoder, points))


# -- fusion tasks ----------------------------------------------------------------


def point_batch(n: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        'image': torch.rand(n, 3, 16, 16, generator=generator),
        'label': torch.arange(n) % 3,
        'point': torch.tensor([[-170.0 + 60 * i, -60.0 + 20 * i] for i in range(n)]),
    }


@pytest.mark.parametrize('fusion', ['concat', 'prior'])
def test_fusion_classification_trains_heads_not_the_frozen_encoder(fusion) -> None:
    task = LocationFusionClassification(
        model=IMAGE_MODEL, num_classes=3, location_encoder=tiny_encoder(), fusion=fusion
    )
    task.train()
    assert not task.location_encoder.training
    batch = point_batch()
    loss = task.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for p in task.location_encoder.parameters())
    assert all(p.grad is not None for p in task.head.parameters())
    if fusion == 'prior':
        assert all(p.grad is not None for p in task.prior.parameters())

    probabilities = task.predict_step(batch, 0)
    assert probabilities.shape == (6, 3)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(6))
    # The location is used: the same images elsewhere get other outputs.
    task.eval()
    moved = task(batch['image'], batch['point'].flip(0))
    assert not torch.allclose(task(batch['image'], batch['point']), moved)


def test_fusion_prior_is_a_product_of_probabilities() -> None:
    task = LocationFusionClassification(
        model=IMAGE_MODEL,
        num_classes=3,
        location_encoder=tiny_encoder(),
        fusion='prior',
    )
    task.eval()
    batch = point_batch()
    with torch.no_grad():
        out = task(batch['image'], batch['point'])
        image_p = task.head(task.model(batch['image'])).softmax(1)
        prior_p = task.prior(task._embed(batch['point'])).softmax(1)
    product = image_p * prior_p
    torch.testing.assert_close(out.softmax(1), product / product.sum(1, keepdim=True))


def test_fusion_on_geodataset_batches(utm_raster) -> None:
    batch = geo_batch(utm_raster)
    batch['label'] = torch.tensor([0, 1, 0, 1])
    task = LocationFusionClassification(
        model=IMAGE_MODEL,
        num_classes=2,
        location_encoder=tiny_encoder(),
        crs=UTM,
        freeze_location_encoder=False,
    )
    loss = task.training_step(batch, 0)
    loss.backward()
    # Fine-tuned: the encoder trains too.
    assert task.location_encoder.training
    assert all(p.grad is not None for p in task.location_encoder.parameters())

    regression = LocationFusionRegression(
        model=IMAGE_MODEL, location_encoder=tiny_encoder(), crs=UTM
    )
    batch['label'] = torch.rand(4)
    assert torch.isfinite(regression.training_step(batch, 0))
    assert regression.predict_step(batch, 0).shape == (4, 1)


def test_fusion_errors() -> None:
    with pytest.raises(ValueError, match='location_encoder is required'):
        LocationFusionClassification(model=IMAGE_MODEL, num_classes=3)
    with pytest.raises(ValueError, match='not available for regression'):
        LocationFusionRegression(
            model=IMAGE_MODEL, location_encoder=tiny_encoder(), fusion='prior'
        )
    with pytest.raises(ValueError, match="needs task='multiclass'"):
        LocationFusionClassification(
            model=IMAGE_MODEL,
            task='binary',
            location_encoder=tiny_encoder(),
            fusion='prior',
        )
    task = LocationFusionClassification(
        model=IMAGE_MODEL, num_classes=3, location_encoder=tiny_encoder()
    )
    with pytest.raises(ValueError, match='no location for these images'):
        task(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match='neither'):
        task.training_step(
            {'image': torch.rand(2, 3, 16, 16), 'label': torch.ones(2)}, 0
        )


def test_fusion_keeps_an_encoder_path_in_its_hyperparameters(tmp_path) -> None:
    path = tmp_path / 'encoder.pt'
    torch.save(tiny_encoder().state_dict(), path)
    task = LocationFusionRegression(model=IMAGE_MODEL, location_encoder=str(path))
    assert task.hparams['location_encoder'] == str(path)
    # A module is saved in the state dict, not among the hyperparameters.
    module = LocationFusionRegression(
        model=IMAGE_MODEL, location_encoder=tiny_encoder()
    )
    assert 'location_encoder' not in module.hparams
    assert any(k.startswith('location_encoder.') for k in module.state_dict())


# -- Blue Marble land-cover data and the YAML config -----------------------------


def write_bluemarble(root: pathlib.Path, n: int = 24, labels: bool = True) -> None:
    """A tiny Blue Marble folder: n 16 x 16 RGB patches spread over the globe."""
    (root / 'images').mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        lon, lat = -170.0 + 340.0 * i / n, -70.0 + 140.0 * ((i * 7) % n) / n
        profile = {
            'driver': 'GTiff',
            'height': 16,
            'width': 16,
            'count': 3,
            'dtype': 'uint8',
            'crs': 'EPSG:4326',
            'transform': from_origin(lon - 8 / 15, lat + 8 / 15, 1 / 15, 1 / 15),
        }
        with rasterio.open(root / 'images' / f'patch_{i}.tif', 'w', **profile) as dst:
            dst.write(rng.integers(0, 255, (3, 16, 16), dtype=np.uint8))
        rows.append({'fn': f'patch_{i}.tif', 'lon': lon, 'lat': lat, 'label': i % 3})
    with open(root / 'index.csv', 'w', newline='') as handle:
        fields = ['fn', 'lon', 'lat', 'label'] if labels else ['fn', 'lon', 'lat']
        writer = csv.DictWriter(handle, fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)


def test_bluemarble_landcover_dataset_and_splits(tmp_path) -> None:
    write_bluemarble(tmp_path / 'bm')
    dataset = BlueMarbleLandCover(tmp_path / 'bm')
    sample = dataset[5]
    assert sample['image'].shape == (3, 16, 16)
    assert sample['image'].dtype == torch.float32
    assert int(sample['label']) == 5 % 3
    figure = dataset.plot(dict(sample, prediction=torch.tensor(1)))
    assert 'prediction' in figure.axes[0].get_title()
    plt.close(figure)
    torch.testing.assert_close(
        sample['point'], torch.tensor(dataset.points[5], dtype=torch.float32)
    )
    module = BlueMarbleLandCoverDataModule(root=str(tmp_path / 'bm'), val_fraction=0.2)
    module.setup('fit')
    parts = [
        set(module.train_dataset.indices),
        set(module.val_dataset.indices),
        set(module.test_dataset.indices),
    ]
    assert sum(map(len, parts)) == 24 and set.union(*parts) == set(range(24))
    # Spatial blocks: no 10-degree cell is both in training and in test.
    from satclip_tg.datasets.splits import block_ids

    blocks = block_ids(dataset.points)
    assert not set(blocks[list(parts[0])]) & set(blocks[list(parts[2])])

    # The transform as the data set's transforms adds the embedding per sample.
    module = BlueMarbleLandCoverDataModule(
        root=str(tmp_path / 'bm'), transforms=LocationEmbedding(tiny_encoder())
    )
    module.setup('fit')
    sample = module.train_dataset[0]
    expected = reference(tiny_encoder(), sample['point'][None].double())[0]
    torch.testing.assert_close(sample['location_embedding'], expected)


def test_bluemarble_without_labels_needs_the_modis_data(tmp_path) -> None:
    from satclip_tg.datasets.downstream.sources import DataUnavailableError

    write_bluemarble(tmp_path / 'bm', n=3, labels=False)
    with pytest.raises(DataUnavailableError, match='download'):
        BlueMarbleLandCover(tmp_path / 'bm', cache_dir=tmp_path / 'empty')


@pytest.mark.parametrize('fusion', ['concat', 'prior'])
def test_fusion_config_passes_fast_dev_run(tmp_path, fusion) -> None:
    write_bluemarble(tmp_path / 'bm')
    encoder = tmp_path / 'encoder.pt'
    torch.save(tiny_encoder().state_dict(), encoder)
    arguments = [
        'fit',
        f'--config={CONFIG}',
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        f'--trainer.default_root_dir={tmp_path}',
        f'--data.init_args.root={tmp_path / "bm"}',
        '--data.init_args.batch_size=4',
        f'--model.init_args.location_encoder={encoder}',
        f'--model.init_args.model={IMAGE_MODEL}',
        f'--model.init_args.fusion={fusion}',
    ]
    if fusion == 'concat':
        # The docs' YAML: the transform given to the data module by class_path.
        overlay = tmp_path / 'transform.yaml'
        overlay.write_text(
            'data:\n  init_args:\n    transforms:\n'
            '      class_path: satclip_tg.transforms.LocationEmbedding\n'
            f'      init_args:\n        encoder: {encoder}\n'
        )
        arguments.insert(2, f'--config={overlay}')
    assert main(arguments) == 0
