"""tcig: layout-controlled text-to-image generation, after TCIG (arXiv 2403.01212)."""

__version__ = "0.1.0"

from tcig.errors import ClassNameError, ConfigError, LayoutError, ModelLoadError, TCIGError  # noqa: E402
from tcig.layout import IGNORE, Layout  # noqa: E402

__all__ = [
    "IGNORE",
    "ClassNameError",
    "ConfigError",
    "Layout",
    "LayoutError",
    "ModelLoadError",
    "TCIGError",
    "__version__",
]

from tcig.pipeline import TCIGOutput, TCIGPipeline  # noqa: E402
from tcig.settings import (
    Stage1Settings,  # noqa: E402
    Stage2Settings,  # noqa: E402
)

__all__ += ["Stage1Settings", "Stage2Settings", "TCIGOutput", "TCIGPipeline"]
