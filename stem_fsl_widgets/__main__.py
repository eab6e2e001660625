"""``python -m stem_fsl_widgets`` = the ``stem-fsl`` command."""

import sys

from .cli import main

sys.exit(main())
