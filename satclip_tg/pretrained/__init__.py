"""Pretrained SatCLIP models: the official checkpoints, ours and TorchGeo's.

`load_location_encoder` returns the location encoder alone; it reads only the
location-encoder tensors of a checkpoint and never builds or downloads an
image backbone. `load_satclip` returns the full image + location model as a
`SatCLIPTask`, with the image weights taken from the checkpoint itself.

Sources understood by both:

* a local checkpoint file: an official SatCLIP Lightning checkpoint
  (`satclip-*.ckpt`), a checkpoint written by our `SatCLIPTask`, or (for
  `load_location_encoder` only) a plain state dict of
  `torchgeo.models.SatCLIP` or of a SIREN location network;
* a Hugging Face repo id of an official model, e.g.
  ``'microsoft/SatCLIP-ViT16-L40'`` (downloaded once with `huggingface_hub`
  and read from its cache afterwards), or ``'hf://owner/repo/file.ckpt'``;
* a TorchGeo weights enum member such as
  `torchgeo.models.SatCLIP_Weights.SATCLIP_VIT16_L40`, or its name as a string
  (read from the torch hub cache, downloaded by torch hub if absent);
* a name registered with `satclip_tg.weights.register_weights` or
  ``satclip-tg weights register`` (the file's SHA-256 is checked on load);
* for `load_location_encoder`, an in-memory state dict (a mapping of names to
  tensors) or checkpoint dict.

All files are read with ``torch.load(..., weights_only=True)``.

The package has three parts: `sources` (where the weights come from: the hub,
TorchGeo's enum, local files, registered names), `formats` (checkpoint
layouts, shape inference, the closed-form mapping) and `load` (the loaders).
Everything public is importable from ``satclip_tg.pretrained`` itself.
"""

from ..errors import CheckpointError, CheckpointUnavailableError
from .load import (
    PretrainedInfo,
    get_pretrained_info,
    load_location_encoder,
    load_satclip,
    resolve_device,
)
from .sources import OFFICIAL_CHECKPOINTS, OfficialCheckpoint

__all__ = [
    'OFFICIAL_CHECKPOINTS',
    'CheckpointError',
    'CheckpointUnavailableError',
    'OfficialCheckpoint',
    'PretrainedInfo',
    'get_pretrained_info',
    'load_location_encoder',
    'load_satclip',
    'resolve_device',
]
