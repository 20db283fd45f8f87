"""A user's clone has no `../shared` beside it: nothing the suite or the code reads may live
there. Test data is copied into `tests/data/<folder>/` with its source's LICENSE.

`.ci/run` also runs part of the suite from a fresh clone in a folder with no `shared`
beside it, so a read this scan misses still fails there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A path into the sibling folder, however it is spelt: "../shared", parents[n] / "shared".
OUTSIDE = re.compile(r"""\.\./shared|["']shared["']\s*[/,)]|/shared/data""")


def test_nothing_in_src_or_tests_reads_the_shared_folder() -> None:
    offenders = []
    for folder in ("src", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if OUTSIDE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_copied_test_data_carries_its_licence() -> None:
    folders = [p for p in (ROOT / "tests" / "data").iterdir() if p.is_dir()]
    assert folders, "tests/data holds the copied test data"
    for folder in folders:
        assert (folder / "LICENSE").is_file(), f"{folder.name} needs its source's LICENSE"


def test_the_scan_would_catch_the_old_spellings() -> None:
    for line in (
        'FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "data"',
        'open("../shared/data/stripe/fixtures3.json")',
        "ROOT.parent / 'shared' / 'data'",
    ):
        assert OUTSIDE.search(line), line
