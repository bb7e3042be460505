"""The README's Guarantees table names tests; each must exist, or the table is a promise nobody checks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_the_guarantees_table_names_exists():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Guarantees") : readme.index("## Running it locally")]
    sources = {path.name: path.read_text() for path in (ROOT / "tests").glob("test_*.py")}
    named = re.findall(r"(?:(test_\w+\.py))?::(test_\w+)(\*?)", table)
    assert len(named) >= 25
    for file, name, wildcard in named:
        pattern = f"def {name}" + ("" if wildcard else "(")
        places = [sources[file]] if file else list(sources.values())
        assert any(pattern in text for text in places), f"README names {file}::{name}{wildcard}, which does not exist"
