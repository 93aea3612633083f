"""``python -m ocrlab`` is the ``ocrlab`` command."""

import sys

from .cli import main

sys.exit(main())
