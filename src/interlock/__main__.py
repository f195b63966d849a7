"""``python -m interlock``: the same as the ``interlock`` command."""

import sys

from .cli import main

sys.exit(main())
