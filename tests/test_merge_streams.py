"""scripts/merge_streams.py: a line split across two stream outputs is joined, nothing else."""
from __future__ import annotations

import nbformat

import merge_streams


def _stream(name: str, text: str):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_split_line_is_joined_and_other_outputs_kept(tmp_path):
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    cell = nbformat.v4.new_code_cell("print(x)", outputs=[
        _stream("stdout", "tensor([1, 2])"), _stream("stdout", "\nnext\n"),
        _stream("stderr", "warning\n"), figure, _stream("stdout", "after\n")])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)

    assert merge_streams.merge_notebook(path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [(o.output_type, o.get("name"), o.get("text")) for o in outputs] == [
        ("stream", "stdout", "tensor([1, 2])\nnext\n"), ("stream", "stderr", "warning\n"),
        ("display_data", None, None), ("stream", "stdout", "after\n")]


def test_a_notebook_without_split_streams_is_left_untouched(tmp_path):
    cell = nbformat.v4.new_code_cell("print(1)", outputs=[_stream("stdout", "1\n")])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    before = path.read_bytes()
    assert not merge_streams.merge_notebook(path)
    assert path.read_bytes() == before
