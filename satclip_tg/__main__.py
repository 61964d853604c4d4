"""``python -m satclip_tg`` runs the ``satclip-tg`` command."""

import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main())
