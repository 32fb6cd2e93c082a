"""``python -m shmsock._cli``: the same as the ``shmsock`` command."""

import sys

from . import main

sys.exit(main())
