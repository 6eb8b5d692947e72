"""``python -m lnlab`` = the ``lnlab`` command."""

import sys

from lnlab.cli import main

sys.exit(main())
