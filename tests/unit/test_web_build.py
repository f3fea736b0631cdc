"""The dashboard's built pages (shipped in the package) match their sources in web/.

`pip install` needs no Node.js because the Vite build is committed under headnode/web/static.
The build records a digest of the sources it was made from (source-hash.txt, written by a
plugin in web/vite.config.js); this test recomputes it in Python, so a source change that was
not rebuilt (`make web`) fails here, on machines without Node.js too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.conftest import REPO

WEB = REPO / "web"
STATIC = REPO / "headnode" / "web" / "static"
CONFIGS = ("index.html", "package.json", "package-lock.json", "vite.config.js")


def source_hash() -> str:
    """sha256 over each source, in order of its path under web/: path, newline, bytes, newline."""
    files = [p for p in (WEB / "src").rglob("*") if p.is_file()] + [WEB / name for name in CONFIGS]
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(WEB).as_posix()):
        digest.update(path.relative_to(WEB).as_posix().encode() + b"\n" + path.read_bytes() + b"\n")
    return digest.hexdigest()


def test_the_committed_build_was_made_from_the_sources_as_they_are() -> None:
    recorded = (STATIC / "source-hash.txt").read_text().strip()
    assert recorded == source_hash(), ("the dashboard's build in headnode/web/static is stale: rebuild it with "
                                       "`make web` (cd web && npm ci && npm run build) and commit it")


def test_the_page_loads_only_assets_that_are_shipped() -> None:
    index = (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="\.?/?(assets/[^"]+)"', index)
    assert any(a.endswith(".js") for a in assets), index
    for asset in assets:
        assert (STATIC / asset).is_file(), f"index.html loads {asset}, which the build did not write"
    assert not re.search(r'(?:src|href)="(?:https?:)?//', index), "the page loads nothing from elsewhere"


def test_the_package_ships_the_pages() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"headnode.web" = ["static/*", "static/assets/*"]' in text
    assert not any(Path(STATIC).rglob("*.map")), "source maps stay out of the package"
