"""Shared test set-up."""

# urllib3 (pulled in by torchgeo) opens a throw-away socket at import time to
# probe for IPv6 support. Import it here, before pytest-socket blocks sockets
# for the tests, so that the probe does not show up as a blocked access.
import pytest
import timm
import torchgeo.models  # noqa: F401
from torchvision.models._api import WeightsEnum


@pytest.fixture
def offline_weights(monkeypatch):
    """Serve TorchGeo weights from freshly initialised models instead of a download."""

    def get_state_dict(self, *args, **kwargs):
        return timm.create_model(
            self.meta['model'], in_chans=self.meta['in_chans']
        ).state_dict()

    monkeypatch.setattr(WeightsEnum, 'get_state_dict', get_state_dict)
