"""The documentation stays true: README.md and docs/*.md link only to files in the
repository, every path, make target and ``millrace`` command they name exists, and
docs/configuration.md is what tools/config_docs.py generates from the Settings classes."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<([a-z][a-z0-9+.-]*:[^>\s]+)>")
LOCAL_HOSTS = {"localhost", "127.0.0.1"}
REPO_DIRS = ("services/", "libs/", "cli/", "deploy/", "examples/", "tests/", "tools/", "bench/")
PLACEHOLDER = re.compile(r"[<>{}*…|]")


def relative(page: Path) -> str:
    return str(page.relative_to(ROOT))


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code."""
    return SPAN.sub("", FENCE.sub("", text))


def code(text: str) -> Iterator[str]:
    """Inline code spans and the lines of fenced code blocks."""
    for block in FENCE.finditer(text):
        yield from block.group(0).splitlines()[1:-1]
    yield from SPAN.findall(FENCE.sub("", text))


def links(page: Path) -> list[str]:
    return [a or b for a, b in LINK.findall(prose(page.read_text()))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if match := re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line):
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def load_config_docs() -> ModuleType:
    """tools/config_docs.py, imported from its file (tools/ is not a package)."""
    if "config_docs" not in sys.modules:
        spec = importlib.util.spec_from_file_location("config_docs", ROOT / "tools/config_docs.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["config_docs"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["config_docs"]


def test_the_pages_exist() -> None:
    names = {page.name for page in PAGES}
    assert {"architecture.md", "configuration.md", "protocols.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_relative_link_resolves_in_the_repository(page: Path) -> None:
    broken = []
    for target in links(page):
        parsed = urlparse(target)
        if parsed.scheme:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(ROOT) or not file.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {relative(file)}")
    assert broken == [], f"{relative(page)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_no_link_leaves_the_repository(page: Path) -> None:
    outside = [
        target
        for target in links(page)
        if urlparse(target).scheme and urlparse(target).hostname not in LOCAL_HOSTS
    ]
    assert outside == [], f"{relative(page)} links out of the repository: {outside}"
    assert "../shared" not in page.read_text(), f"{relative(page)} names ../shared"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_path_in_backticks_exists(page: Path) -> None:
    """`services/...`, `libs/...` and the other folders' paths name real files, so a
    rename that forgets the docs fails here (placeholders like <name> are skipped)."""
    missing = []
    for span in SPAN.findall(FENCE.sub("", page.read_text())):
        token = span.split()[0].rstrip(".,:;") if span.split() else ""
        if token.startswith(REPO_DIRS) and not PLACEHOLDER.search(token):
            if not (ROOT / token).exists():
                missing.append(token)
    assert missing == [], f"{relative(page)} names paths that do not exist: {missing}"


def resolves(dotted: str) -> bool:
    """``millrace_common.http.ErrorBody``: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_python_name_in_backticks_exists(page: Path) -> None:
    """`millrace_common.messaging.Envelope` and the like name real modules and objects."""
    names = {
        span
        for span in SPAN.findall(FENCE.sub("", page.read_text()))
        if re.fullmatch(r"millrace_[a-z_]+(\.[A-Za-z_]\w*)+", span)
    }
    assert sorted(n for n in names if not resolves(n)) == [], f"{relative(page)}: no such name"


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", text, re.M))


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_make_target_named_exists(page: Path) -> None:
    named = {
        m for line in code(page.read_text()) for m in re.findall(r"\bmake ([a-z][\w-]*)", line)
    }
    assert named - make_targets() == set(), f"{relative(page)}: no such make target"


def millrace_commands() -> Any:
    import typer
    from millrace_cli.main import app

    return typer.main.get_command(app)


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_millrace_command_named_exists(page: Path) -> None:
    root = millrace_commands()
    unknown = []
    for line in code(page.read_text()):
        for words in re.findall(r"(?:^|(?<!from)[\s(]|bin/)millrace((?: [a-z][a-z0-9-]*)*)", line):
            node, path = root, "millrace"
            for word in words.split():
                subcommands = getattr(node, "commands", None)
                if subcommands is None:
                    break  # a leaf command: the rest are its arguments
                if word not in subcommands:
                    unknown.append(f"{path} {word}")
                    break
                node, path = subcommands[word], f"{path} {word}"
    assert unknown == [], f"{relative(page)} names commands that do not exist: {unknown}"


def test_every_setting_has_a_description() -> None:
    assert load_config_docs().undocumented() == []


def test_configuration_reference_is_generated_from_the_settings() -> None:
    """Adding or changing a setting without `make docs` fails here."""
    expected = load_config_docs().render()
    committed = (ROOT / "docs/configuration.md").read_text()
    assert committed == expected, "docs/configuration.md is stale: run make docs"


def test_configuration_reference_names_every_service() -> None:
    text = (ROOT / "docs/configuration.md").read_text()
    for config in ROOT.glob("services/*/src/millrace_*/config.py"):
        assert f"`{config.relative_to(ROOT)}`" in text


def test_readme_is_the_front_door() -> None:
    text = README.read_text()
    assert "make dev" in text and "make test" in text
    assert len(text.splitlines()) < 150, "the README is the front door: details go to docs/"
    linked = {Path(target.partition("#")[0]).name for target in links(README)}
    for page in ("architecture.md", "configuration.md", "protocols.md"):
        assert page in linked, f"README.md does not link docs/{page}"
