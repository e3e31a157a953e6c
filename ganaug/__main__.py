"""``python -m ganaug``: the ``ganaug`` command (also under ``torchrun -m ganaug``)."""

import sys

from ganaug.cli import main

sys.exit(main())
