"""``python -m shmsock``: the same as the ``shmsock`` command."""

import sys

from ._cli import main

sys.exit(main())
