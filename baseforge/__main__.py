"""python3 -m baseforge: the same as the ``baseforge`` command (:mod:`.cli`)."""

import sys

from .cli import main

sys.exit(main())
