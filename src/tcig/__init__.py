"""tcig: layout-controlled text-to-image generation, after TCIG (arXiv 2403.01212).

The pipeline and the settings load on first use (``tcig.TCIGPipeline``), so that importing the package, as the
command line does first, does not import torch.
"""

__version__ = "0.1.0"

from tcig.errors import ClassNameError, ConfigError, LayoutError, ModelLoadError, TCIGError  # noqa: E402

_LAZY = {
    "IGNORE": "tcig.layout",
    "Layout": "tcig.layout",
    "TCIGOutput": "tcig.pipeline",
    "TCIGPipeline": "tcig.pipeline",
    "Stage1Settings": "tcig.settings",
    "Stage2Settings": "tcig.settings",
}

__all__ = ["ClassNameError", "ConfigError", "LayoutError", "ModelLoadError", "TCIGError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tcig' has no attribute '{name}'")
