"""``python -m interlock.testbed``: the child entry point of ``spawn_testbed``."""

import sys

from ._cli import main

sys.exit(main())
