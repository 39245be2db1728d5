"""A small synthetic world of outdoor scenes with exact label maps and captions, to train tiny models offline."""

from tcig.scenes.render import SCENE_CLASSES, Scene, render_scene, render_scenes, scene_layout

__all__ = ["SCENE_CLASSES", "Scene", "render_scene", "render_scenes", "scene_layout"]
