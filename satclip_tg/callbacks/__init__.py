"""Lightning callbacks: prediction writer and training-time embedding maps."""

from .embedding_map import EmbeddingMapLogger
from .prediction_writer import (
    IMAGE_PREFIX,
    LOCATION_PREFIX,
    EmbeddingWriter,
    check_prediction_output,
    merge_parts,
    prediction_table,
)

__all__ = [
    'IMAGE_PREFIX',
    'LOCATION_PREFIX',
    'EmbeddingMapLogger',
    'EmbeddingWriter',
    'check_prediction_output',
    'merge_parts',
    'prediction_table',
]
