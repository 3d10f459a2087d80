"""The documentation is self-contained and findable.

The project workspace around the repository (``../shared``: the specification in
``shared/spec``, the shared data) is not part of msakit, so a page that points there points
at nothing for anyone who only has the repository or the built site: no page of the site, and
not the README, may refer to it. Every command of the command line appears in the pages, and
the site's search index (what the search box of the built site reads, offline) finds it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def nav_pages() -> list[str]:
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    return [f"docs/{page}" for page in nav]


# Pages (relative to the repository root) that must not refer outside the repository: all of them.
CHECKED = ["README.md", *nav_pages()]

OUTSIDE = re.compile(r"\.\./shared|shared/spec|/work/shared|shared/data")


def subcommands() -> list[str]:
    from msakit.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(action.choices)


def test_the_check_sees_every_page_and_bites():
    assert len(CHECKED) >= 12 and "docs/tutorial.md" in CHECKED and "docs/install.md" in CHECKED
    assert OUTSIDE.search("The full formats: `../shared/spec/DATA.md`") and OUTSIDE.search("--data ../shared/data/mosi_text")
    assert not OUTSIDE.search("docs/errors.md") and not OUTSIDE.search("shared/private subspaces")


@pytest.mark.parametrize("page", CHECKED)
def test_page_refers_to_nothing_outside_the_repository(page):
    path = ROOT / page
    assert path.is_file(), f"{page}: no such page"
    found = [f"{page}:{number}: {line.strip()}" for number, line in enumerate(path.read_text().splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "pages must be self-contained (no ../shared, no shared/spec, no shared data):\n" + "\n".join(found)


def test_every_cli_subcommand_appears_in_the_docs():
    text = "\n".join((ROOT / page).read_text() for page in CHECKED)
    missing = [name for name in subcommands() if not re.search(rf"msakit {name}\b", text)]
    assert len(subcommands()) >= 10 and not missing, f"subcommands no page shows as `msakit NAME`: {missing}"


@pytest.fixture(scope="module")
def search_index(tmp_path_factory) -> list[dict]:
    """The built site's search index (site/search/search_index.json), from a strict build."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("msakit[docs] (mkdocs, mkdocs-material) is not installed")
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((site / "search" / "search_index.json").read_text())["docs"]


def test_the_built_site_refers_to_nothing_outside_the_repository(search_index):
    found = [f"{doc['location']}: ...{doc['text'][max(0, m.start() - 60):m.end() + 60]}..."
             for doc in search_index for m in [OUTSIDE.search(doc["text"])] if m]
    assert not found, "the built site refers outside the repository (a page, or a docstring in the API reference):\n" + "\n".join(found)


def test_search_finds_every_subcommand_on_a_user_page(search_index):
    """What the search box does: every word of the query in a section's text (mkdocs' lunr
    index, case-insensitive); the hit must be a user page, not only the API reference."""
    def hits(query: str) -> list[str]:
        words = query.lower().split()
        return [doc["location"] for doc in search_index
                if all(w in (doc["title"] + " " + doc["text"]).lower() for w in words) and not doc["location"].startswith("reference/")]

    queries = [f"msakit {name}" for name in subcommands()] + ["predict --video", "serve curl", "manifest", "label.csv"]
    missing = [q for q in queries if not hits(q)]
    assert not missing, f"the site's search finds no user page for: {missing}"
    assert any(loc.startswith("tutorial/") for loc in hits("msakit serve")) and any(loc.startswith("install/") for loc in hits("cuda"))
