"""The documentation cannot rot: every document the code cites exists, every relative link in
the Markdown resolves (file and heading), and ``docs/cli.md`` lists exactly the real
subcommands and flags."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from hptransfer.cli.main import build_parser
from hptransfer.cli.reference import argument_name, arguments, commands

ROOT = Path(__file__).resolve().parents[1]
# A cited document: a path ending in .md, maybe with a #heading; not part of a longer path
# with placeholders (``results/<study>/README.md``) or globs (``plays/*/*.md``).
CITED = re.compile(r"(?<![\w./<>*-])([\w./-]*\w\.md)(?:#([\w-]+))?")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def markdown_files() -> list[Path]:
    docs = sorted((ROOT / "docs").glob("*.md"))
    return [ROOT / "README.md", *docs, *sorted((ROOT / "results").glob("**/README.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (repeats get -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    repeats: dict[str, int] = {}
    for line in FENCE.sub("", path.read_text()).splitlines():
        if match := re.match(r"#{1,6} (.*)", line):
            base = slug(match.group(1))
            count = repeats.get(base, 0)
            found.add(f"{base}-{count}" if count else base)
            repeats[base] = count + 1
    return found


def problem(target: Path, anchor: str | None) -> str | None:
    """Why a reference to ``target#anchor`` does not resolve; None when it does."""
    if not target.exists():
        return "no such file"
    if anchor and target.suffix == ".md" and anchor not in anchors(target):
        return f"no heading #{anchor}"
    return None


def docstrings_and_comments(path: Path) -> str:
    """The text of a module's docstrings and comments (not its string literals: file names);
    a sweep spec's comments."""
    source = path.read_text()
    if path.suffix == ".yaml":
        return "\n".join(line.partition("#")[2] for line in source.splitlines())
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, documented)]
    texts = [ast.get_docstring(n, clean=False) or "" for n in nodes]
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    texts += [t.string for t in tokens if t.type == tokenize.COMMENT]
    return "\n".join(texts)


def test_every_document_the_code_cites_exists() -> None:
    missing = []
    code = [p for folder in ("hptransfer", "tests", "tools") for p in (ROOT / folder).rglob("*.py")]
    for path in sorted([*code, *(ROOT / "sweeps").glob("*.yaml")]):
        for name, anchor in CITED.findall(docstrings_and_comments(path)):
            candidates = [ROOT / name, path.parent / name]
            reasons = [problem(c, anchor) for c in candidates]
            if all(reasons):
                cited = f"{name}#{anchor}" if anchor else name
                missing.append(f"{path.relative_to(ROOT)}: {cited} ({reasons[0]})")
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)


def test_every_relative_link_in_the_markdown_resolves() -> None:
    broken = []
    for path in markdown_files():
        for link in LINK.findall(FENCE.sub("", path.read_text())):
            if re.match(r"[a-z]+:", link):  # https:, mailto:
                continue
            name, _, anchor = link.partition("#")
            target = (path.parent / name).resolve() if name else path
            if reason := problem(target, anchor or None):
                broken.append(f"{path.relative_to(ROOT)}: {link} ({reason})")
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.fixture(scope="module")
def cli_sections() -> dict[str, str]:
    """docs/cli.md's text per command heading (``## `hptransfer fit` ``)."""
    text = (ROOT / "docs" / "cli.md").read_text()
    parts = re.split(r"^## `([^`]+)`$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_cli_reference_lists_every_subcommand_and_flag(cli_sections: dict[str, str]) -> None:
    regenerate = "regenerate it: python -m hptransfer.cli.reference > docs/cli.md"
    real = {line: parser for line, _, parser in commands(build_parser())}
    assert sorted(cli_sections) == sorted(real), regenerate
    for line, parser in real.items():
        documented = set(re.findall(r"^\| `([^`]+)` \|", cli_sections[line], flags=re.M))
        assert documented == {argument_name(a) for a in arguments(parser)}, f"{line}: {regenerate}"


def test_the_link_check_sees_a_broken_link_and_a_missing_heading(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## The `fit.json` format\n\n```text\n# not a heading\n```\n")
    assert problem(page, "the-fitjson-format") is None and problem(page, "top") is None
    assert problem(page, "not-a-heading") == "no heading #not-a-heading"
    assert problem(tmp_path / "gone.md", None) == "no such file"
    assert CITED.findall("see ``docs/fit.md#drift``, not results/<study>/README.md") == [
        ("docs/fit.md", "drift")
    ]
