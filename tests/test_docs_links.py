"""The documentation is self-contained: no page sends the reader outside the repository.

The project workspace around the repository (``../shared``: the specification in
``shared/spec``, the shared data) is not part of msakit, so a page that points there points
at nothing for anyone who only has the repository or the built site. A page is checked
here once it is free of such references: for now only ``docs/data.md`` (the formats page).
The README and the user guide (``docs/guide/*.md``) still name ``../shared/data/mosi_text``
in commands, which tests/test_readme.py maps to a small generated table; add each page to
``CHECKED`` as it stops doing so, and eventually check every page of the site and the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Pages (relative to the repository root) that must not refer outside the repository.
CHECKED = ["docs/data.md"]

OUTSIDE = re.compile(r"\.\./shared|shared/spec")


@pytest.mark.parametrize("page", CHECKED)
def test_page_refers_to_nothing_outside_the_repository(page):
    assert OUTSIDE.search("The full formats: `../shared/spec/DATA.md`") and not OUTSIDE.search("docs/errors.md")  # the check bites
    path = ROOT / page
    assert path.is_file(), f"{page}: no such page"
    found = [f"{page}:{number}: {line.strip()}" for number, line in enumerate(path.read_text().splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "pages must be self-contained (no ../shared, no shared/spec):\n" + "\n".join(found)

