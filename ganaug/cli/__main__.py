"""``python -m ganaug.cli`` (and ``torchrun -m ganaug.cli``): the ``ganaug`` command."""

import sys

from ganaug.cli.commands import main

sys.exit(main())
