"""The console's vendored files are byte-for-byte the pinned npm packages' files (as
scripts/vendor-console.sh copies them), so they cannot drift from package.json."""

from __future__ import annotations

import json

import pytest

from tests.cli import ROOT
from tests.console.conftest import in_ci

#: vendored copy -> (npm package, file inside it)
VENDORED = {
    "api/console/static/vendor/uPlot.iife.min.js": ("uplot", "dist/uPlot.iife.min.js"),
    "api/console/static/vendor/uPlot.min.css": ("uplot", "dist/uPlot.min.css"),
    "api/console/static/vendor/uPlot.LICENSE": ("uplot", "LICENSE"),
    "tests/console/vendor/axe.min.js": ("axe-core", "axe.min.js"),
    "tests/console/vendor/axe-core.LICENSE": ("axe-core", "LICENSE"),
}


def _pinned() -> dict[str, str]:
    return dict(json.loads((ROOT / "package.json").read_text())["dependencies"])


@pytest.mark.parametrize("copy", sorted(VENDORED))
def test_vendored_files_equal_the_pinned_packages(copy: str) -> None:
    package, inside = VENDORED[copy]
    installed = ROOT / "node_modules" / package
    if not installed.is_dir():
        message = f"node_modules/{package} is missing (run `npm ci`)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    version = json.loads((installed / "package.json").read_text())["version"]
    assert version == _pinned()[package], f"node_modules holds {package} {version}: run npm ci"
    assert (ROOT / copy).read_bytes() == (installed / inside).read_bytes(), (
        f"{copy} differs from node_modules/{package}/{inside}: run scripts/vendor-console.sh"
    )


def test_every_vendored_package_is_pinned_exactly() -> None:
    pinned = _pinned()
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for package in {p for p, _ in VENDORED.values()}:
        assert pinned[package][0].isdigit(), f"{package}: pin an exact version"
        assert lock[f"node_modules/{package}"]["version"] == pinned[package]
    header = (ROOT / "api/console/static/vendor/uPlot.iife.min.js").read_text()[:200]
    assert f"(v{pinned['uplot']})" in header
