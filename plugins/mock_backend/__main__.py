"""``python -m vidbridge.plugins.mock_backend``: serve the mock WanGP (see :mod:`.cli`)."""

import sys

from .cli import main

sys.exit(main())
