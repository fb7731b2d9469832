"""``python -m blocks`` runs the ``eventblocks`` command line."""

import sys

from blocks._cli.app import main

sys.exit(main())
