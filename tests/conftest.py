import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Each test keeps tcig's on-disk cache in its own folder, never the user's."""
    monkeypatch.setenv("TCIG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Paths of the tiny models (built once per test session)."""
    from tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture
def spec(tmp_path):
    """The boat layout (``tiny_models.BOAT_SPEC``) as a JSON spec file."""
    from tiny_models import BOAT_SPEC

    path = tmp_path / "scene.json"
    path.write_text(json.dumps(BOAT_SPEC))
    return path
