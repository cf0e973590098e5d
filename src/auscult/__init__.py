"""auscult: unsupervised anomalous sound detection for machine condition monitoring.

Heavy dependencies (torch, scipy, sklearn) are imported by the submodules that need them,
never here, so that ``import auscult`` and ``auscult --help`` stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
