"""Checks of the book as a whole: table of contents, chapter conventions, committed outputs.

The conventions are those of CONTRIBUTING.md ("Chapter conventions"); nbval re-runs the
chapters themselves. These checks read the committed notebooks only, so they take well
under a second per chapter.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import browser_check
import sync_setup_cells
from conftest import ROOT

CHAPTERS = sync_setup_cells.chapter_paths(ROOT)
# Code that draws: pyplot, the convbook.plot figure functions, imshow.
DRAWS = re.compile(r"\bplt\.\w+\(|\bcb\.plot\.(show|plot)_\w+\(|\.imshow\(")
CHECK = re.compile(r"^\s*assert |\bcb\.claim\(", re.M)
DROPDOWN = re.compile(r"^\s*(`{3,}|:{3,})\{dropdown\}", re.MULTILINE)
def markdown_headings(text: str) -> list[tuple[int, str]]:
    """``(level, title)`` of every ATX heading outside fenced code blocks."""
    headings, fence = [], None
    for line in text.splitlines():
        marker = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence is None and marker:
            fence = marker.group(1)
        elif fence is not None:
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence) \
                    and line.strip() == marker.group(1):
                fence = None
        elif match := re.match(r"(#{1,6})\s+(.+?)\s*#*\s*$", line):
            headings.append((len(match.group(1)), match.group(2)))
    return headings


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def outputs(nb: nbformat.NotebookNode):
    for number, cell in enumerate(code_cells(nb), start=1):
        for output in cell.outputs:
            yield number, output


@pytest.fixture(params=CHAPTERS, ids=lambda path: path.stem)
def chapter(request) -> tuple[Path, nbformat.NotebookNode]:
    return request.param, nbformat.read(request.param, as_version=4)


# --- the book as a whole ------------------------------------------------------------------

def test_setup_cells_agree_with_config():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/sync_setup_cells.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_toc_lists_exactly_the_pages_that_exist():
    docnames = browser_check.toc_docnames(ROOT)
    missing = [d for d in docnames if browser_check.source_of(d, ROOT) is None]
    assert not missing, f"in _toc.yml but no .md/.ipynb file: {missing}"
    chapters = {f"chapters/{path.stem}" for path in CHAPTERS}
    unlisted = sorted(chapters - set(docnames))
    assert not unlisted, f"chapters missing from _toc.yml: {unlisted}"
    assert len(docnames) == len(set(docnames)), f"_toc.yml lists a page twice: {docnames}"


def test_config_shows_committed_outputs_and_only_toc_files():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert sync_setup_cells.repository_url(ROOT / "_config.yml").startswith("https://")


def test_bibliography_entries_are_unique_and_every_citation_and_entry_is_used():
    bib = (ROOT / "references.bib").read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,\s]+),", bib, flags=re.MULTILINE)
    assert len(keys) == len(set(keys)), f"references.bib repeats a key: {sorted(keys)}"
    pages = [browser_check.source_of(d, ROOT) for d in browser_check.toc_docnames(ROOT)]
    pages = [page for page in pages if page is not None]
    cited = {key for page in pages
             for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text(encoding="utf-8"))
             for key in re.split(r"[,;]\s*", group)}
    assert cited <= set(keys), f"cited but not in references.bib: {sorted(cited - set(keys))}"
    assert set(keys) <= cited, f"in references.bib but cited nowhere: {sorted(set(keys) - cited)}"


def test_markdown_headings_skip_code_fences():
    text = "# Title\n````{dropdown} Solution\n```python\n# a comment\n```\n````\n## Next"
    assert markdown_headings(text) == [(1, "Title"), (2, "Next")]


def test_toc_docnames_walks_parts_in_reading_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "root: intro\nparts:\n  - chapters:\n      - file: chapters/01_a\n"
        "        sections:\n          - file: chapters/01b.ipynb\n  - chapters:\n      - file: refs\n")
    assert browser_check.toc_docnames(tmp_path) == ["intro", "chapters/01_a", "chapters/01b", "refs"]


def test_browser_check_flags_latex_left_in_prose_only():
    html = ("<main><p>Math <span class='math'><mjx-container>k × k</mjx-container></span> and "
            "<code>\\newline</code> are fine.</p><ul><li>$a \\cdot b$ leaked</li></ul>"
            "<div class='cell_output'><pre>\\alpha</pre></div></main>")
    leaked = browser_check.leaked_latex(browser_check.BeautifulSoup(html, "html.parser"))
    assert len(leaked) == 1 and "\\cdot" in leaked[0]


# --- the setup-cell script itself ---------------------------------------------------------

def test_sync_replaces_a_stale_setup_cell_and_check_reports_it(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/x/y/\n")
    stale = nbformat.v4.new_code_cell("# Setup: old text")
    stale.outputs = [nbformat.v4.new_output("stream", name="stdout", text="installed\n")]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), stale])
    path = tmp_path / "chapters" / "01_x.ipynb"
    nbformat.write(nb, path)

    assert sync_setup_cells.main(["--check", "--root", str(tmp_path)]) == 1
    assert sync_setup_cells.main(["--root", str(tmp_path)]) == 0
    assert sync_setup_cells.main(["--check", "--root", str(tmp_path)]) == 0
    cell = code_cells(nbformat.read(path, as_version=4))[0]
    assert '"git+https://example.org/x/y"' in cell.source
    assert cell.outputs == [] and "hide-input" in cell.metadata["tags"]


def test_sync_inserts_a_setup_cell_before_other_code():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"),
                                         nbformat.v4.new_code_cell("import torch")])
    expected = sync_setup_cells.setup_cell_source("https://example.org/x/y")
    assert sync_setup_cells.sync_notebook(nb, expected)
    assert [c.source for c in code_cells(nb)] == [expected, "import torch"]
    assert not sync_setup_cells.sync_notebook(nb, expected)


def test_repository_url_must_be_https(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: git@github.com:x/y.git\n")
    with pytest.raises(ValueError, match="repository.url"):
        sync_setup_cells.repository_url(config)


# --- every chapter ------------------------------------------------------------------------

def test_structure_title_goals_summary_exercises(chapter):
    path, nb = chapter
    assert nb.cells and nb.cells[0].cell_type == "markdown", f"{path.name}: cell 1 must be markdown"
    first = markdown_headings(nb.cells[0].source)
    assert first and first[0][0] == 1, f"{path.name}: cell 1 must start with '# Title'"

    headings = [h for c in nb.cells if c.cell_type == "markdown" for h in markdown_headings(c.source)]
    h1 = [title for level, title in headings if level == 1]
    assert len(h1) == 1, f"{path.name}: exactly one H1 expected, found {h1}"
    skips = [(a, b) for a, b in zip(headings, headings[1:]) if b[0] > a[0] + 1]
    assert not skips, f"{path.name}: heading levels skip: {skips}"

    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    before_code = "\n".join(c.source for c in nb.cells[:first_code])
    assert re.search(r"learning goals", before_code, re.IGNORECASE), \
        f"{path.name}: 'Learning goals' must come before the first code cell"
    h2 = [title.lower() for level, title in headings if level == 2]
    assert h2[-2:] == ["summary", "exercises"], \
        f"{path.name}: must end with '## Summary' then '## Exercises', H2s are {h2}"

    exercises_at = max(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                       and any(t.lower() == "exercises" for _, t in markdown_headings(c.source)))
    exercises = "\n".join(c.source for c in nb.cells[exercises_at:] if c.cell_type == "markdown")
    solutions = len(DROPDOWN.findall(exercises))
    assert 2 <= solutions <= 4, f"{path.name}: {solutions} dropdown solutions, want 2–4"


def test_no_errors_and_nothing_on_stderr(chapter):
    path, nb = chapter
    bad = [f"code cell {n}: {o.output_type} {o.get('name', o.get('ename', ''))}"
           for n, o in outputs(nb)
           if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")]
    assert not bad, f"{path.name}: {bad}"


def test_committed_from_one_top_to_bottom_run(chapter):
    path, nb = chapter
    counts = [cell.execution_count for cell in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), \
        f"{path.name}: execution counts {counts}; re-run it with make execute NB={path.relative_to(ROOT)}"


def test_figures_are_png_and_shown(chapter):
    path, nb = chapter
    code = "\n".join(cell.source for cell in code_cells(nb))
    data = [(n, o.get("data", {})) for n, o in outputs(nb)]
    pngs = sum("image/png" in d for _, d in data)
    if DRAWS.search(code):
        assert pngs, f"{path.name} draws figures but has no PNG output (was it run with MPLBACKEND=Agg?)"
    other = [(n, k) for n, d in data for k in d
             if k.startswith("image/") and k not in ("image/png", "image/gif")]
    assert not other, f"{path.name}: figures must be PNG (GIF for animations): {other}"
    unrendered = [n for n, d in data if "image/png" not in d
                  and str(d.get("text/plain", "")).startswith("<Figure size")]
    assert not unrendered, f"{path.name}: code cells {unrendered} show a Figure as text, not an image"


def test_no_timing_columns_shown(chapter):
    path, nb = chapter
    shown = [n for n, o in outputs(nb)
             if re.search(r"examples_per_s|>seconds<|\d s</td>",
                          str(o.get("data", {})) + o.get("text", ""))]
    assert not shown, f"{path.name}: code cells {shown} show timings in a table (its widths vary)"


def test_code_lines_fit_the_page(chapter):
    """_static/convbook.css sizes code so that about 92 characters show without scrolling."""
    path, nb = chapter
    long = [(n, len(line)) for n, cell in enumerate(code_cells(nb))
            for line in cell.source.splitlines() if len(line) > 90]
    assert not long, f"{path.name}: (code cell, characters) over 90: {long}"


def test_no_output_hidden_by_a_trailing_semicolon(chapter):
    """nbval runs cells without IPython's history, where a final ``;`` hides nothing."""
    path, nb = chapter
    hidden = [n for n, cell in enumerate(code_cells(nb))
              if cell.source.rstrip().endswith(";")]
    assert not hidden, f"{path.name}: code cells {hidden} end in ';': assign the result instead"


def test_trained_outputs_are_compared_within_tolerance_not_ignored(chapter):
    """``nbval-ignore-output`` would let a regression in a trained number pass unseen; such
    cells are tagged ``nbval-approx`` instead (tests/nbval_approx.py, CONTRIBUTING.md)."""
    path, nb = chapter
    ignored = [n for n, cell in enumerate(code_cells(nb))
               if "nbval-ignore-output" in cell.metadata.get("tags", [])
               and not cell.metadata.get("convbook", {}).get("chaotic")]
    assert not ignored, f"{path.name}: code cells {ignored} are tagged nbval-ignore-output; " \
                        "tag them nbval-approx (or give metadata convbook.chaotic: why)"


def test_approximate_outputs_follow_training_and_are_asserted(chapter):
    """Cells tagged ``nbval-approx`` print numbers that depend on trained weights, which
    differ between CPU models (CONTRIBUTING.md). Nothing before the first training cell
    may be tagged, and each tagged cell's claim is asserted in it or in the next two."""
    path, nb = chapter
    code = code_cells(nb)
    tagged = [n for n, cell in enumerate(code) if "nbval-approx" in cell.metadata.get("tags", [])]
    if not tagged:
        return
    first_fit = next((n for n, cell in enumerate(code) if "fit(" in cell.source), None)
    assert first_fit is not None and tagged[0] >= first_fit, \
        f"{path.name}: code cells {tagged} are tagged but training starts at {first_fit}"
    unasserted = [n for n in tagged if not any(CHECK.search(cell.source)
                                               for cell in code[n:n + 3])]
    assert not unasserted, f"{path.name}: tagged code cells {unasserted} have no check nearby"


def test_claims_are_checked_out_of_the_readers_way(chapter):
    """A cell that checks a claim (``cb.claim``) holds checks only: the book removes it
    (tag ``remove-cell``), it prints nothing, and no teaching cell ends in checks."""
    path, nb = chapter
    for number, cell in enumerate(code_cells(nb), start=1):
        if "cb.claim(" not in cell.source:
            continue
        assert "remove-cell" in cell.metadata.get("tags", []), \
            f"{path.name}: code cell {number} checks a claim but is shown on the page"
        assert not cell.outputs, f"{path.name}: check cell {number} prints something"


def test_every_page_says_what_computed_it(chapter):
    """The imports cell prints ``cb.machine()``'s line, so a reader whose numbers differ
    sees which CPU, threads and torch computed the page's."""
    path, nb = chapter
    imports = next(cell for cell in code_cells(nb) if "import convbook as cb" in cell.source)
    printed = "".join(output.get("text", "") for output in imports.outputs)
    assert "cb.machine()" in imports.source and printed.startswith("Computed on "), path.name


def test_prose_speaks_to_the_learner_not_the_maintainer(chapter):
    """No "(asserted)" or notes on which machine ran what in the prose."""
    path, nb = chapter
    prose = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    for phrase in ("(asserted)", "asserted", "AMD EPYC", "no GPU was available"):
        assert phrase not in prose, f"{path.name}: the prose says {phrase!r}"


# A decimal number; a full stop after it ends the sentence.
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?!\w|\.\d)")
SOLUTION = re.compile(r"^(\s*)(`{3,}|:{3,})\{dropdown\}[^\n]*\n(.*?)^\1\2\s*$", re.M | re.S)


def solution_decimals(nb: nbformat.NotebookNode) -> set[str]:
    """Every decimal number written in a solution dropdown of the chapter's markdown."""
    return {number for cell in nb.cells if cell.cell_type == "markdown"
            for match in SOLUTION.finditer(cell.source)
            for number in DECIMAL.findall(match.group(3))}


def printed_decimals(nb: nbformat.NotebookNode) -> set[str]:
    """Decimal numbers the chapter prints (streams, text and HTML outputs) or its code sets."""
    texts = [cell.source for cell in code_cells(nb)]
    for _, output in outputs(nb):
        texts.append(output.get("text", ""))
        texts += [output.get("data", {}).get(mime, "") for mime in ("text/plain", "text/html")]
    return set(DECIMAL.findall("\n".join(texts)))


def supported(number: str, printed: set[str]) -> bool:
    """``number`` is printed, or is a printed number rounded to as many decimals."""
    places = len(number.split(".")[1])
    return any(p == number or (len(p.split(".")[1]) > places
                               and f"{float(p):.{places}f}" == number) for p in printed)


def test_solution_numbers_are_printed_by_the_chapter(chapter):
    """A number a solution states must come from a cell CI runs (issue: solutions that run)."""
    path, nb = chapter
    printed = printed_decimals(nb)
    unsupported = sorted(n for n in solution_decimals(nb) if not supported(n, printed))
    assert not unsupported, f"{path.name}: solutions state {unsupported}, which no cell prints"


def test_solution_check_catches_a_typed_number():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("```{dropdown} Solution\nIt reaches 0.9157, not 0.95.\n```"),
        nbformat.v4.new_code_cell("acc = evaluate()", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="test accuracy 0.91572\n")]),
    ])
    assert solution_decimals(nb) == {"0.9157", "0.95"}
    assert [n for n in solution_decimals(nb) if not supported(n, printed_decimals(nb))] == ["0.95"]


def test_no_line_split_across_stream_outputs(chapter):
    """The kernel can flush a ``print`` between its text and its newline, leaving two stream
    outputs; the book merges them with an extra newline, a blank line the reader sees."""
    path, nb = chapter
    split = [n for n, cell in enumerate(code_cells(nb))
             for a, b in zip(cell.outputs, cell.outputs[1:])
             if a.output_type == b.output_type == "stream" and a.name == b.name
             and not a.text.endswith("\n")]
    assert not split, f"{path.name}: code cells {split} have a line split across outputs; re-run it"
