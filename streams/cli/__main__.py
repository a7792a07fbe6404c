"""``python -m streams.cli``: the ``tierstream`` command without the installed script."""

import sys

from streams.cli import main

sys.exit(main())
