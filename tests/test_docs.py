"""The pages outside the chapters state each fact once, and the other copies agree with it.

A fact written in several places drifts: the dataset search order was written in six
places, and two of them came to say that ``make system-deps`` installs a dataset. Each fact
now has one home, and these tests fail when a copy comes back or a link points nowhere:

- the repository URL: ``_config.yml`` (``repository.url``); pages use ``{{ repository_url }}``;
- where datasets come from: README's "Data without the network" and ``convbook.sources``;
- the decision rule: intro.md's "Reading a number" (label ``decision-rule``);
- where code goes: CONTRIBUTING's "Where does it go" table, one row per module of convbook;
- how to cite: ``CITATION.cff``, which must name the same repository and version.
"""
from __future__ import annotations

import re

import nbformat
import pytest
import yaml

import data_setup
from conftest import ROOT
from convbook import sources, stats

PAGES = sorted(ROOT.glob("*.md"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPOSITORY_URL = CONFIG["repository"]["url"].rstrip("/")


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def chapter_markdown() -> list[tuple[str, str]]:
    """``(chapter file name, markdown cell text)`` for every markdown cell of every chapter."""
    return [(path.name, cell.source)
            for path in sorted((ROOT / "chapters").glob("*.ipynb"))
            for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[str]:
    """The ATX headings of a Markdown text, outside fenced code blocks."""
    found, fence = [], None
    for line in text.splitlines():
        marker = re.match(r"\s*(`{3,}|~{3,})", line)
        if marker:
            fence = None if fence and marker.group(1).startswith(fence) else (fence or marker.group(1))
        elif fence is None and (match := re.match(r"#{1,6}\s+(.*)", line)):
            found.append(match.group(1))
    return found


# --- the repository URL -------------------------------------------------------------------

def test_no_page_writes_out_the_repository_url():
    copies = [page.name for page in PAGES if REPOSITORY_URL in page.read_text(encoding="utf-8")]
    copies += [name for name, text in chapter_markdown() if REPOSITORY_URL in text]
    assert not copies, (f"{copies} write out {REPOSITORY_URL}: use {{{{ repository_url }}}} "
                        "(book pages) or name the repository in words (README, CONTRIBUTING)")


def test_page_substitutions_repeat_the_repository_of_config():
    substitutions = CONFIG["parse"]["myst_substitutions"]
    assert substitutions["repository_url"] == CONFIG["repository"]["url"]
    assert substitutions["repository_branch"] == CONFIG["repository"]["branch"]
    used = set(re.findall(r"\{\{[^}]*?\b(repository_\w+)", read("intro.md")))
    assert used and used <= set(substitutions), used


def test_citation_cff_is_complete_and_names_this_repository():
    cff = yaml.safe_load(read("CITATION.cff"))
    assert cff["cff-version"] == "1.2.0"
    assert cff["message"] and cff["title"]
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])
    assert cff["repository-code"].rstrip("/") == REPOSITORY_URL
    version = re.search(r'^version\s*=\s*"([^"]+)"', read("pyproject.toml"), re.MULTILINE)
    assert cff["version"] == version.group(1)
    assert {"MIT", "CC-BY-4.0"} <= set(cff["license"])


# --- where the datasets come from ---------------------------------------------------------

def test_dataset_search_order_is_written_in_one_page():
    folder = str(sources.DEBIAN_FASHION_MNIST)
    pages = {page.name: page.read_text(encoding="utf-8").count(folder) for page in PAGES}
    assert pages.pop("README.md") == 1, "README's 'Data without the network' names the folder"
    assert not any(pages.values()), f"pages that repeat the search order: {pages}"
    assert "DEBIAN_FASHION_MNIST" in sources.__doc__
    assert folder not in data_setup.__doc__, "data_setup.py refers to convbook.sources instead"


def test_no_page_says_system_deps_installs_data():
    makefile = read("Makefile")
    recipe = re.search(r"^system-deps:\n((?:\t.*\n|\s+.*\n)+)", makefile, re.MULTILINE).group(1)
    words = re.search(r"install -y -qq\s+(.*?);", recipe, re.DOTALL).group(1).split()
    packages = {word for word in words if word != "\\"}
    assert packages == {"chromium", "chromium-driver", "poppler-utils"}, packages
    for page in PAGES:
        sentences = re.split(r"(?<=[.:;])\s", page.read_text(encoding="utf-8"))
        wrong = [s for s in sentences if "system-deps" in s
                 and re.search(r"dataset|Fashion-MNIST|MNIST|CIFAR", s)]
        assert not wrong, f"{page.name}: {wrong}"


# --- the decision rule --------------------------------------------------------------------

def test_decision_rule_is_stated_once_in_intro():
    intro = read("intro.md")
    assert intro.count("(decision-rule)=") == 1
    assert re.search(r"\(decision-rule\)=\n## Reading a number\n", intro)
    assert "cb.stats.paired_difference_interval" in intro
    assert callable(stats.paired_difference_interval)
    restated = [page.name for page in PAGES
                if page.name != "intro.md" and "interval in twenty" in page.read_text(encoding="utf-8")]
    assert not restated, f"{restated} restate the decision rule: link {{ref}}`decision-rule`"


# --- CONTRIBUTING's table of modules ------------------------------------------------------

def where_does_it_go() -> list[list[str]]:
    """The rows of CONTRIBUTING's "Where does it go" table, as lists of cell texts."""
    section = read("CONTRIBUTING.md").split("## Where does it go", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split(" | ") for line in section.splitlines()
            if line.startswith("| ")]
    return rows[1:]  # without the header row


def test_where_does_it_go_names_every_module_of_convbook_once():
    package = ROOT / "convbook"
    modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    modules |= {f"{path.name}/" for path in package.iterdir()
                if path.is_dir() and (path / "__init__.py").is_file()}
    named = [name for row in where_does_it_go() for name in re.findall(r"`([^`]+)`", row[0])]
    assert len(named) == len(set(named)), f"a module in two rows: {named}"
    assert set(named) == modules, (f"missing from the table: {sorted(modules - set(named))}; "
                                   f"in the table but not in convbook/: {sorted(set(named) - modules)}")


def test_where_does_it_go_names_test_files_that_exist():
    named = [name for row in where_does_it_go() for name in re.findall(r"`(test_\w+\.py)`", row[-1])]
    assert named
    missing = [name for name in named if not (ROOT / "tests" / name).is_file()]
    assert not missing, f"CONTRIBUTING names tests that do not exist: {missing}"


# --- links between the pages ----------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_to_a_section_of_another_page_find_it(page):
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"\(#([\w-]+)\)", text)
    links = [(page.name, anchor) for anchor in links]
    links += re.findall(r"\b([A-Za-z]+\.md)#([\w-]+)", text)
    for target, anchor in links:
        anchors = {github_anchor(h) for h in headings(read(target))}
        assert anchor in anchors, f"{page.name} links to {target}#{anchor}, which has no such heading"


def test_github_anchor_matches_githubs_rule():
    assert github_anchor("Your numbers and the book's") == "your-numbers-and-the-books"
    assert github_anchor("Contributing, forking, reporting errors") == \
        "contributing-forking-reporting-errors"
    assert headings("# A\n```bash\n# not a heading\n```\n## B") == ["A", "B"]
