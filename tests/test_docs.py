"""README.md is a front door and docs/*.md hold the rest: short, no dead links, nothing orphaned.

A link is a markdown link or image, `[text](path)` or `[text](path#anchor)`, outside code.
Relative paths must name a file of the repository; an anchor must be the GitHub slug of a
heading in the target (or in the same file, for `#anchor`). http(s) and mailto links are not
followed.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans (whose brackets are not links)."""
    return CODE_SPAN.sub("code", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercased, punctuation dropped, spaces as -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts as its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for a markdown file (repeated headings get -1, -2, ...)."""
    text = path.read_text(encoding="utf-8")
    found: set[str] = set(HTML_ANCHOR.findall(text))
    seen: Counter[str] = Counter()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def dead_links(path: Path, root: Path = ROOT) -> list[str]:
    """The links of a markdown file that name no file of ``root``, or no heading in it."""
    dead = []
    for target in links(path):
        if re.match(r"(?i)(https?|mailto):", target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if root.resolve() not in resolved.parents and resolved != root.resolve():
            dead.append(f"{target}: outside the repository")
        elif not resolved.exists():
            dead.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            dead.append(f"{target}: no heading with that anchor in {resolved.name}")
    return dead


def readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def test_the_readme_is_short() -> None:
    assert len(readme_lines()) <= 130, "README.md is a front door: move details to docs/"


def test_the_readme_opens_with_what_agentspace_is() -> None:
    lines = readme_lines()
    assert lines[0] == "# agentspace"
    first = next(line for line in lines[1:] if line.strip())
    assert re.match(r"(agentspace is |An? )", first), f"not a sentence saying what it is: {first}"
    assert first.rstrip().endswith("."), f"not one sentence: {first}"
    assert "Jupyter" in first and "agent" in first, first


def test_the_readme_gives_the_two_commands_in_one_block() -> None:
    blocks = re.findall(r"^```\w*\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines()]
    assert commands == ["make run", "make test"], blocks[0]


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_dead_relative_links(path: Path) -> None:
    assert dead_links(path) == []


def test_every_doc_is_linked_from_the_readme_or_another_doc() -> None:
    linked: set[Path] = set()
    for source in [README, *DOCS]:
        for target in links(source):
            file_part = target.partition("#")[0]
            if file_part and not re.match(r"(?i)(https?|mailto):", target):
                resolved = (source.parent / file_part).resolve()
                if resolved != source.resolve():
                    linked.add(resolved)
    assert DOCS, "docs/ has no markdown files"
    orphans = [doc.name for doc in DOCS if doc.resolve() not in linked]
    assert orphans == [], f"linked from nowhere: {orphans}"


def test_the_checker_finds_a_dead_file_a_dead_anchor_and_skips_code(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other doc\n\n## The store's health: `doctor`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Same page — here\n\n"
        "[ok](other.md) [ok](other.md#the-stores-health-doctor) [ok](#same-page--here)\n"
        "[web](https://example.com/nowhere.md) ![img](other.md)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [bad local](#nope)\n"
        "`[in code](missing-in-code.md)`\n\n```\n[in a block](missing-in-block.md)\n```\n"
    )
    assert dead_links(page, tmp_path) == [
        "missing.md: no such file",
        "other.md#nope: no heading with that anchor in other.md",
        "#nope: no heading with that anchor in page.md",
    ]


def test_slugs_follow_github() -> None:
    assert slug('The "Agent (Python)" kernel') == "the-agent-python-kernel"
    assert slug("run_cell and your own tools") == "run_cell-and-your-own-tools"
    assert slug("bench/kernel.py — Kernel side (#5), 2026-11-21") == (
        "benchkernelpy--kernel-side-5-2026-11-21"
    )
    assert slug("The `agentspace` command") == "the-agentspace-command"
