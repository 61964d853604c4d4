"""What satclip-tg adds to the Lightning checkpoints its task writes.

`SatCLIPTask` stores, beside Lightning's own keys, one entry under
`CHECKPOINT_KEY`::

    checkpoint['satclip_tg'] = {
        'format': 1,
        'location_encoder': {
            'config': {...},  # the LocationEncoder's recipe
            'state_dict_prefix': 'location_encoder.',
        },
        'model_card': {...},  # see satclip_tg.model_card
    }

so that `satclip_tg.pretrained.load_location_encoder` rebuilds the location
encoder alone, without Lightning or an image backbone. The writer (the task)
and the reader (the loader) both take the layout from this module, which
imports nothing, so neither has to import the other.
"""

from collections.abc import Mapping
from typing import Any

__all__ = [
    'CHECKPOINT_FORMAT',
    'CHECKPOINT_KEY',
    'LOCATION_ENCODER_KEY',
    'LOCATION_ENCODER_PREFIX',
    'MODEL_CARD_KEY',
    'task_checkpoint_entry',
]

#: Key under which checkpoints store what rebuilds the location encoder alone.
CHECKPOINT_KEY = 'satclip_tg'
#: Version of that entry's layout.
CHECKPOINT_FORMAT = 1
#: Key, inside the entry, of the location encoder's recipe and key prefix.
LOCATION_ENCODER_KEY = 'location_encoder'
#: Prefix of the location encoder's tensors in the task's state dict.
LOCATION_ENCODER_PREFIX = 'location_encoder.'
#: Key, inside the entry, of the model card.
MODEL_CARD_KEY = 'model_card'


def task_checkpoint_entry(
    location_config: Mapping[str, Any] | None, model_card: Mapping[str, Any]
) -> dict[str, Any]:
    """The entry `SatCLIPTask` stores under `CHECKPOINT_KEY`.

    Args:
        location_config: The location encoder's recipe (`LocationEncoder.config`;
            ``None`` for an encoder not built from a recipe, whose checkpoint
            the loader rebuilds from the task's hyperparameters instead).
        model_card: The card (`satclip_tg.model_card.build_model_card`).

    Returns:
        The entry, of plain types only when its arguments are (so checkpoints
        stay loadable with ``torch.load(..., weights_only=True)``).
    """
    return {
        'format': CHECKPOINT_FORMAT,
        LOCATION_ENCODER_KEY: {
            'config': location_config,
            'state_dict_prefix': LOCATION_ENCODER_PREFIX,
        },
        MODEL_CARD_KEY: model_card,
    }
