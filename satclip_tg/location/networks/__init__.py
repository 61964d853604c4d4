"""Location networks: the trainable map from encoded coordinates to embeddings."""

from .fcnet import FCNet
from .mlp import LinearNetwork, MLPNetwork
from .siren import SirenLayer, SirenNet

__all__ = ['FCNet', 'LinearNetwork', 'MLPNetwork', 'SirenLayer', 'SirenNet']
