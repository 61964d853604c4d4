"""satclip-tg plugin: segmentation-models-pytorch encoders as image backbones."""

from .backbone import (
    CURATED_ENCODERS,
    SMPImageEncoder,
    load_encoder_weights,
    smp_backbone,
)

__all__ = [
    'CURATED_ENCODERS',
    'SMPImageEncoder',
    'load_encoder_weights',
    'smp_backbone',
]
