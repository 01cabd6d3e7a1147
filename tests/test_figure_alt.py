"""Alt text from figure titles (_ext/figure_alt.py): the description, the kernel hook, Sphinx.

The kernel test executes a small notebook the way ``make execute`` does (the IPython
extension loaded with ``--ext``), with ``%matplotlib inline`` run after the extension, as
chapters do, and reads the PNG that comes back.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
from docutils import nodes  # noqa: E402
from docutils.utils import new_document  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from PIL import Image  # noqa: E402

import figure_alt
from conftest import ROOT


def test_describe_reads_suptitle_panel_titles_and_axis_labels():
    fig, (left, right) = plt.subplots(1, 2)
    fig.suptitle("Training history")
    left.set(title="Loss", xlabel="epoch", ylabel="loss")
    right.set_title(r"$k_h \times k_w$ kernel")
    assert figure_alt.describe(fig) == "Training history: Loss (loss against epoch); k_h × k_w kernel"
    plt.close(fig)


def test_describe_lists_repeated_panels_once_and_caps_their_number():
    fig, axes = plt.subplots(2, 6)
    for i, ax in enumerate(axes.flat):
        ax.set_title(f"class {i % 11}")
    text = figure_alt.describe(fig)
    assert text.startswith("class 0; class 1;") and text.endswith("; and 3 more panels")
    plt.close(fig)


def test_describe_is_empty_for_a_figure_without_titles_or_labels():
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    assert figure_alt.describe(fig) == ""
    plt.close(fig)


def _png_descriptions(nb) -> list[str]:
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                png = base64.b64decode(output["data"]["image/png"])
                with Image.open(io.BytesIO(png)) as image:
                    found.append(image.text.get(figure_alt.DESCRIPTION, ""))
    return found


def test_kernel_extension_writes_the_description_into_every_shown_png(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt"),
        nbformat.v4.new_code_cell("fig = plt.figure()\nplt.plot([1, 2])\nplt.title('Two points')"),
        nbformat.v4.new_code_cell("%matplotlib inline\nfig = plt.figure()\n"
                                  "plt.plot([2, 1])\nplt.xlabel('step')\nplt.ylabel('loss')"),
    ])
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "_ext"))
    NotebookClient(nb, timeout=120, kernel_name="python3", extra_arguments=["--ext=figure_alt"],
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert _png_descriptions(nb) == ["Two points", "loss against step"]


def _png_with(tmp_path: Path, text: dict[str, str]) -> Path:
    fig, ax = plt.subplots(figsize=(1, 1))
    path = tmp_path / "figure.png"
    fig.savefig(path, metadata=text)
    plt.close(fig)
    return path


def _doctree_with(*images: nodes.image) -> nodes.document:
    document = new_document("test")
    document += nodes.paragraph("", "", *images)
    return document


def test_sphinx_side_fills_missing_alt_from_the_png_and_keeps_an_authors_alt(tmp_path):
    described = _png_with(tmp_path, {figure_alt.DESCRIPTION: "Kernels of the first layer"})
    filled, by_author = nodes.image(uri=str(described)), nodes.image(uri=str(described), alt="Mine")
    figure_alt.fill_alt_text(None, _doctree_with(filled, by_author))
    assert filled["alt"] == "Kernels of the first layer" and by_author["alt"] == "Mine"


def test_sphinx_side_finds_images_named_relative_to_the_source_folder(tmp_path):
    chapter_dir = tmp_path / "chapters"
    chapter_dir.mkdir()
    _png_with(tmp_path, {figure_alt.DESCRIPTION: "Feature maps"})
    env = SimpleNamespace(docname="chapters/06_lenet",
                          relfn2path=lambda uri, doc: (uri, str(chapter_dir / uri)))
    app = SimpleNamespace(srcdir=str(tmp_path), env=env)
    as_collected, as_myst_nb = nodes.image(uri="figure.png"), nodes.image(uri="/figure.png")
    figure_alt.fill_alt_text(app, _doctree_with(as_collected, as_myst_nb))
    assert as_collected["alt"] == as_myst_nb["alt"] == "Feature maps"


def test_sphinx_side_reads_a_gif_animations_comment_block(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("white", "black")]
    path = tmp_path / "steps.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:],
                   comment="Animation in 2 frames: the kernel slides".encode())
    gif = nodes.image(uri=str(path))
    figure_alt.fill_alt_text(None, _doctree_with(gif))
    assert gif["alt"] == "Animation in 2 frames: the kernel slides"


def test_sphinx_side_leaves_alt_unset_when_the_png_has_no_description(tmp_path):
    bare = nodes.image(uri=str(_png_with(tmp_path, {})))
    figure_alt.fill_alt_text(None, _doctree_with(bare))
    assert "alt" not in bare
