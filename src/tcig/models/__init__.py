"""Models: safe loading, devices and pre-processing, the CLIP scorer, segmenters, refiners with their sampling loop,
and the named model sets."""
