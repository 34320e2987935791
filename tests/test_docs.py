"""The README's Layout names every module of the package, so a newcomer's map stays whole."""

from __future__ import annotations

from conftest import ROOT


def _layout() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Layout")
    return readme[start:readme.index("```", readme.index("```", start) + 3)]


def test_readme_layout_lists_every_module() -> None:
    layout = _layout()
    modules = [p for p in (ROOT / "kiosk").rglob("*.py")
               if "migrations" not in p.parts and p.name not in ("__init__.py", "__main__.py")]
    missing = sorted(str(p.relative_to(ROOT)) for p in modules if p.name not in layout)
    assert not missing, f"README Layout does not name: {missing}"


def test_docs_exist_and_are_linked() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in ("docs/architecture.md", "docs/central.md"):
        assert (ROOT / doc).is_file()
        assert doc in readme
