"""Shared test set-up."""

# urllib3 (pulled in by torchgeo) opens a throw-away socket at import time to
# probe for IPv6 support. Import it here, before pytest-socket blocks sockets
# for the tests, so that the probe does not show up as a blocked access.
import torchgeo.models  # noqa: F401
