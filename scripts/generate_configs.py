"""Generate the six released-recipe configs ``configs/sh_*.yaml`` from one source.

The six SatCLIP recipes differ only in the spherical-harmonics degree L, the
frozen image backbone and its crop; everything else (trainer, optimiser,
augmentation, loader settings and the memory arithmetic in the comments) is
the template below. Each config stays a single file, so
``satclip-tg fit --config configs/sh_l40_vit.yaml`` keeps working; the figures
in its comment are computed here for its backbone and crop.

Usage::

    python scripts/generate_configs.py          # rewrite configs/sh_*.yaml
    python scripts/generate_configs.py --check  # exit 1 if a file differs

``tests/test_configs.py`` fails when a committed config differs from what this
script generates: edit the template or the table here, then run it.
"""

import argparse
import pathlib
import sys
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Tiles in S2-100K, and the feature-cache views per tile of the comment.
TILES = 100_000
VIEWS = 16
#: Bytes per cached feature value (float16) and per augmented pixel (float32).
FEATURE_BYTES = 2
PIXEL_BYTES = 4
#: Bands the backbone sees (12 stored plus the empty B10) and live batch sizes.
BANDS = 13
BATCH_PER_GPU = 1024
ONE_GPU_BATCH = 8192


@dataclass(frozen=True)
class Backbone:
    """A frozen SSL4EO-S12 image backbone of the released models."""

    release: str  # the release name's backbone part, e.g. 'ViT16'
    model: str
    weights: str
    crop: int
    feature_dim: int  # width of its pooled features (the cache)


BACKBONES = {
    'resnet18': Backbone(
        'ResNet18', 'resnet18', 'ResNet18_Weights.SENTINEL2_ALL_MOCO', 256, 512
    ),
    'resnet50': Backbone(
        'ResNet50', 'resnet50', 'ResNet50_Weights.SENTINEL2_ALL_MOCO', 256, 2048
    ),
    'vit': Backbone(
        'ViT16',
        'vit_small_patch16_224',
        'ViTSmall16_Weights.SENTINEL2_ALL_MOCO',
        224,
        384,
    ),
}
#: The released spherical-harmonics degrees.
DEGREES = (10, 40)

TEMPLATE = """\
# {release}: the released microsoft/{release} recipe.
#
# Recommended (the backbone is frozen): cache its features once, then train on
# them at batch 8192 on one GPU (docs/pretraining.md):
#   satclip-tg cache-features --config configs/{stem}.yaml \\
#       --output features/{stem} --views 16          # {features_gb} GB of features
#   satclip-tg fit --config configs/{stem}.yaml --config configs/cached.yaml \\
#       --data.init_args.features features/{stem}
# Live tiles, as below:
#   satclip-tg fit --config configs/{stem}.yaml
#
# Spherical harmonics ({harmonics}) + SIREN (capacity 512, 2 hidden
# layers) -> 256-d location embedding, contrasted with a frozen SSL4EO-S12
# {model} (13 bands, crop {crop}) whose projection to 256-d trains.
# AdamW, lr 1e-4, weight decay 0.01, 500 epochs, on S2-100K (78 GB, downloaded
# from Hugging Face into data.init_args.root when download is true).
#
# Live settings for one node with 8 x A100-80GB and 1 TB RAM (DDP):
#   * Contrastive batch 8192 = 8 GPUs x batch_size 1024. gather_distributed
#     (true) gathers the embeddings of all GPUs, so every loss sees 8191
#     negatives (the released models saw 511: batch 512 with gradient
#     accumulation, which adds no negatives; do not emulate a large batch with
#     trainer.accumulate_grad_batches).
#   * Host memory: a tile stays uint16 until the GPU, 12 x 256 x 256 x 2 B =
#     1.57 MB; a batch of 1024 is 1.61 GB; each rank holds
#     num_workers 8 x prefetch_factor 2 + 1 = 17 batches = 27.4 GB,
#     8 ranks 219 GB of the 1 TB. Setup checks this against the
#     available memory and fails early with the figures.
#   * GPU memory: the augmented batch is 1024 x 13 x {crop} x {crop} float32 =
#     {gpu_batch_gb} GB, built 256 tiles at a time (augmentation_chunk_size);
#     the frozen backbone runs in bf16 and keeps no activations for backprop.
#   * CPU: 64 loader workers decode 100,000 tiles per epoch. At 33-110 tiles/s
#     per core (measured on a 2-core machine, files in the page cache) 500
#     epochs are 5e7 decodes: 130-420 core-hours, 2-7 h of all 64 workers,
#     against one decode per tile (100,000) for the cache.
#   * Batch 8192 on ONE GPU belongs on the cached path: live it would hold
#     8192 x 1.57 MB x 33 = 425 GB of host memory in flight (16 workers) and a
#     {one_gpu_batch_gb} GB float32 batch on the GPU.
# Mixed precision (bf16) runs the image backbone only; the location encoder
# always runs in float32 (high-degree harmonics and SIREN's w0 = 30 first layer
# turn half-precision rounding into phase errors). Falls back to CPU (float32)
# when no GPU is present, e.g. for tests with --trainer.fast_dev_run true.
seed_everything: 0
trainer:
  accelerator: auto
  devices: 8
  strategy: auto
  precision: bf16-mixed
  max_epochs: 500
  log_every_n_steps: 10
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        monitor: val_loss
        mode: min
        save_last: true
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
      init_args:
        logging_interval: epoch
    # PCA map of the location embeddings in TensorBoard after each validation
    - class_path: satclip_tg.callbacks.EmbeddingMapLogger
      init_args:
        every_n_epochs: 1
        resolution: 2.0
model:
  class_path: satclip_tg.tasks.SatCLIPPretraining
  init_args:
    model: {model}
    weights: {weights}
    in_channels: 13
    freeze_backbone: true
    positional_encoding: sphericalharmonics
    positional_encoding_args:
      legendre_polys: {degree}
    network: siren
    network_args:
      hidden_dim: 512
      num_hidden_layers: 2
    embed_dim: 256
    lr: 1.0e-4
    weight_decay: 0.01
    lr_schedule: constant
    gather_distributed: true
data:
  class_path: satclip_tg.datamodules.S2100KDataModule
  init_args:
    root: data/s2-100k
    download: false
    batch_size: 1024
    num_workers: 8
    prefetch_factor: 2
    pin_memory: true
    augmentation_chunk_size: 256
    val_split_pct: 0.1
    seed: 0
    crop_size: {crop}
    scale: 10000.0
    insert_zero_b10: true
    flips: true
    blur: true
    coordinate_jitter: 0.01
"""


def render(degree: int, backbone: str) -> str:
    """The config text of one released variant.

    Args:
        degree: Spherical-harmonics degree L (10 or 40).
        backbone: A key of `BACKBONES`.

    Returns:
        The YAML text, comments included.
    """
    spec = BACKBONES[backbone]
    gpu_batch = BATCH_PER_GPU * BANDS * spec.crop**2 * PIXEL_BYTES
    one_gpu_batch = ONE_GPU_BATCH * BANDS * spec.crop**2 * PIXEL_BYTES
    features = TILES * VIEWS * spec.feature_dim * FEATURE_BYTES
    return TEMPLATE.format(
        release=f'SatCLIP-{spec.release}-L{degree}',
        stem=f'sh_l{degree}_{backbone}',
        features_gb=f'{features / 1e9:.1f}',
        degree=degree,
        harmonics=f'L = {degree}, {degree**2} features',
        model=spec.model,
        weights=spec.weights,
        crop=spec.crop,
        gpu_batch_gb=f'{gpu_batch / 1e9:.2f}',
        one_gpu_batch_gb=f'{one_gpu_batch / 1e9:.0f}',
    )


def generate() -> dict[pathlib.Path, str]:
    """All six configs.

    Returns:
        ``{path: text}`` for ``configs/sh_l{L}_{backbone}.yaml``.
    """
    return {
        ROOT / 'configs' / f'sh_l{degree}_{backbone}.yaml': render(degree, backbone)
        for backbone in BACKBONES
        for degree in DEGREES
    }


def main(argv: list[str] | None = None) -> int:
    """Write the configs, or with ``--check`` report those that differ.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status: 1 when ``--check`` finds a difference, else 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='compare, do not write')
    args = parser.parse_args(argv)
    stale = []
    for path, text in generate().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    for path in stale:
        verb = 'differs from the generator' if args.check else 'written'
        print(f'{path.relative_to(ROOT)}: {verb}')
    return 1 if args.check and stale else 0


if __name__ == '__main__':
    sys.exit(main())
