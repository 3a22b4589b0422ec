"""Imports every built-in metric module; each registers its specs on import."""
# ruff: noqa: I001  (one import line per metric module, appended by different helpers)

from . import basic  # noqa: F401
from . import deep  # noqa: F401
from . import ssim  # noqa: F401  (ssim, ms-ssim)
from . import gmsd  # noqa: F401
from . import nlpd  # noqa: F401
from . import fsim  # noqa: F401  (fsim; FSIMc by default)
from . import vsi  # noqa: F401
