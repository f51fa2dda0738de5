"""The README's Guarantees table names tests that exist, so a promise never points at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`((?:core|cli|gui)/test_\w+\.py)(?:::(test_\w+))?`|`::(test_\w+)`")


def _guarantees_rows() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Guarantees\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def test_every_guarantee_names_tests_that_exist() -> None:
    rows = _guarantees_rows()[1:]  # the first row is the table's header
    assert len(rows) >= 15
    for row in rows:
        promise, backing = row.strip("| ").split(" | ", 1)
        found = REFERENCE.findall(backing)
        assert found or "package_test.sh" in backing, f"no test named for: {promise}"
        current_file: Path | None = None
        for file_name, test_name, same_file_test in found:
            if file_name:
                current_file = ROOT / "tests" / file_name
                assert current_file.is_file(), f"{file_name} does not exist ({promise})"
            name = test_name or same_file_test
            if name:
                assert current_file is not None, f"::{name} without a file ({promise})"
                source = current_file.read_text(encoding="utf-8")
                assert f"def {name}(" in source, f"{current_file.name} has no {name}"
