"""The vendored test data are unchanged copies of the ones the project was built from.

``tests/testdata/rfc6962`` is a copy of the RFC 6962 vectors (see its
NOTICE). Where the contributors' copy lies beside the project, at
``../shared/testdata/rfc6962``, the two must hold the same files with the
same bytes (NOTICE, which only the project's copy has, excepted). A clone
with nothing beside it skips this check and runs everything else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backends import RFC6962_VECTORS

ROOT = Path(__file__).resolve().parents[1]
CONTRIBUTORS_COPY = ROOT.parent / "shared" / "testdata" / "rfc6962"
ONLY_IN_THE_PROJECT = {"NOTICE"}


def files_under(directory: Path) -> dict[str, Path]:
    return {str(p.relative_to(directory)): p for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not CONTRIBUTORS_COPY.is_dir(),
                    reason="no ../shared/testdata/rfc6962 beside the project to compare with")
def test_the_rfc6962_vectors_are_byte_identical_to_the_contributors_copy() -> None:
    ours = files_under(RFC6962_VECTORS)
    theirs = files_under(CONTRIBUTORS_COPY)
    assert ONLY_IN_THE_PROJECT <= set(ours)
    assert sorted(set(ours) - ONLY_IN_THE_PROJECT) == sorted(theirs)
    differ = [name for name, path in theirs.items() if ours[name].read_bytes() != path.read_bytes()]
    assert differ == []
