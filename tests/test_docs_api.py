"""docs/api/*.md is generated from the docstrings and must match the code (regenerate: python docs/make_api.py)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _make_api():
    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_api():
    return _make_api()


def test_committed_api_reference_matches_the_docstrings(make_api):
    stale = make_api.stale_pages(ROOT / "docs" / "api")
    assert not stale, f"docs/api is out of date for {stale}: run `python docs/make_api.py` and commit docs/api"


def test_a_changed_docstring_makes_the_reference_stale(make_api, tmp_path, monkeypatch):
    make_api.write_all(tmp_path)
    assert make_api.stale_pages(tmp_path) == []
    import medir.metrics.core as core

    monkeypatch.setattr(core.psnr, "__doc__", "A different docstring.")
    assert make_api.stale_pages(tmp_path) == ["metrics.md"]
    (tmp_path / "extra.md").write_text("left over")
    assert "extra.md" in make_api.stale_pages(tmp_path)


def test_every_public_function_of_a_module_is_on_its_page(make_api):
    import inspect

    import medir.physics.noise as noise

    page = make_api.render("physics")
    for name, obj in vars(noise).items():
        if inspect.isfunction(obj) and obj.__module__ == noise.__name__ and not name.startswith("_"):
            assert f"`{name}(" in page
            doc = inspect.getdoc(obj)
            if doc:
                assert doc.replace("``", "`").splitlines()[0] in page
