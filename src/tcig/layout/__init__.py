"""Layouts: the label-map form (:mod:`.core`), readers of the formats people have (:mod:`.readers`, :mod:`.spec`),
vocabularies and name matching (:mod:`.vocabularies`), standard palettes (:mod:`.palettes`) and conversion."""

from tcig.layout.core import IGNORE, Layout

__all__ = ["IGNORE", "Layout"]
