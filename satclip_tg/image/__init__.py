"""The image side of SatCLIP: backbones with a trainable projection."""

from .backbones import ImageEncoder, load_backbone_weights, timm_backbone

__all__ = ['ImageEncoder', 'load_backbone_weights', 'timm_backbone']
