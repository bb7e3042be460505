"""The README and docs/ stay true: the tests, paths, links, commands and make targets they name exist.

The Guarantees table is a promise only while each test it names exists; a command shown in the
docs must parse as written; a path or link must lead somewhere.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from thumbs.cli import parse

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REPO_PATH = re.compile(r"`((?:pipeline|thumbs|functions|tests|benchmarks|docs)/[\w./-]*)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_readme_stays_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"


def test_every_test_the_guarantees_table_names_exists():
    page = (ROOT / "docs" / "guarantees.md").read_text()
    table = page[page.index("| promise |") :]
    sources = {path.name: path.read_text() for path in (ROOT / "tests").glob("test_*.py")}
    named = re.findall(r"(?:(test_\w+\.py))?::(test_\w+)(\*?)", table)
    assert len(named) >= 25
    for file, name, wildcard in named:
        pattern = f"def {name}" + ("" if wildcard else "(")
        places = [sources[file]] if file else list(sources.values())
        assert any(pattern in text for text in places), f"no test {file}::{name}{wildcard}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_path_a_page_names_exists(page):
    named = REPO_PATH.findall(page.read_text())
    missing = [path for path in named if not (ROOT / path.rstrip(".")).exists()]
    assert not missing, f"{page_id(page)} names paths that do not exist: {missing}"


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_leads_to_a_file_and_heading(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page_id(page)} links {target}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.MULTILINE)
            assert anchor in {github_anchor(h) for h in headings}, f"{page_id(page)} links {target}: no such heading"


def shown_commands(text: str) -> list[str]:
    """``thumbs`` invocations as a reader would type them: lines of sh blocks and inline code spans.

    Synopses (``[OPTION]``, ``A | B``, ``...``) are forms, not commands, and are left out;
    ``<placeholder>`` stands for a value and parses as one.
    """
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        lines += block.splitlines()
    lines += [span for span in re.findall(r"`([^`\n]+)`", text) if span.count(" ") >= 2]
    commands = []
    for line in lines:
        line = re.sub(r"^\s*\$ ", "", line).split(" #")[0].strip()
        line = re.sub(r"<[^>]*>", "NAME", line)
        if not re.match(r"(\.venv/bin/)?thumbs ", line) or re.search(r"\[|\||\.\.\.", line):
            continue
        commands.append(line)
    return commands


def test_every_thumbs_command_shown_in_the_docs_parses():
    checked = 0
    for page in PAGES:
        for command in shown_commands(page.read_text()):
            try:
                parse(shlex.split(command)[1:])
            except SystemExit:
                pytest.fail(f"{page_id(page)} shows `{command}`, which thumbs refuses")
            checked += 1
    assert checked >= 15


def test_every_make_target_shown_in_the_docs_exists():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    for page in PAGES:
        for target in re.findall(r"`make (\w+)`|^make (\w+)", page.read_text(), flags=re.MULTILINE):
            name = next(t for t in target if t)
            assert name in targets, f"{page_id(page)} shows make {name}, which the Makefile lacks"
