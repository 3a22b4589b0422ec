"""``python -m lossarena``: a thin shim onto the top-level CLI in :mod:`lossarena.pipeline.cli`.

This is the one module of the core package that imports the top layer; the import contract exempts it.
"""

import sys

from lossarena.pipeline.cli import main

sys.exit(main())
