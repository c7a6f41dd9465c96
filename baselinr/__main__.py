"""``python -m baselinr``: the same as the ``baselinr`` command."""

import sys

from baselinr.cli import main

sys.exit(main())
