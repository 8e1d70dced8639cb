"""Sphinx helpers for hybridml's site: API pages, benchmark tables, gallery notes.

- ``generate_api_pages``: one page per name in ``hybridml.__all__`` (written into
  ``docs/api/`` when the build starts, so a new public name gets its page;
  ``docs/api.rst`` lists them).
- ``.. benchmark-tables::``: every JSON file in ``docs/benchmarks/`` as a section
  with its provenance, its table and a bar plot (matplotlib), so the benchmarks
  page is regenerated from data (``make bench`` writes the same schema).
- gallery notes: each recipe's page says whether its output was produced at
  build time (and in which mode) or the recipe is shown without running.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.util.nodes import nested_parse_with_titles

DOCS = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------- API pages
def api_names() -> list[str]:
    """The public names, as ``hybridml.__all__`` lists them."""
    import hybridml

    return list(hybridml.__all__)


def _api_page(name: str) -> str:
    import hybridml

    obj = getattr(hybridml, name)
    title = f"hybridml.{name}"
    head = f"{title}\n{'=' * len(title)}\n\n.. currentmodule:: hybridml\n\n"
    if inspect.isclass(obj):
        return head + f".. autoclass:: {name}\n   :members:\n"
    if inspect.isfunction(obj):
        return head + f".. autofunction:: {name}\n"
    return head + f".. autodata:: {name}\n   :no-value:\n\n``{obj!r}``\n"


def generate_api_pages(app) -> None:
    """Write ``docs/api/<name>.rst`` for each public name; drop stale ones.

    ``docs/api.rst`` (committed) lists them with a glob.
    """
    out = DOCS / "api"
    out.mkdir(exist_ok=True)
    names = api_names()
    for stale in out.glob("*.rst"):  # a name no longer public
        if stale.stem not in names:
            stale.unlink()
    for name in names:
        _write_if_changed(out / f"{name}.rst", _api_page(name))
    _write_if_changed(out / "summary.inc", _api_summary(names))


def _api_summary(names: list[str]) -> str:
    """A table of the public names and their summary lines (api.rst includes it)."""
    import hybridml

    lines = [".. list-table::", "   :header-rows: 1", "", "   * - name", "     - what"]
    for name in names:
        obj = getattr(hybridml, name)
        doc = inspect.getdoc(obj) if callable(obj) else None
        summary = doc.strip().splitlines()[0] if doc else f"``{obj!r}``"
        lines += [f"   * - :doc:`{name} <api/{name}>`", f"     - {summary}"]
    return "\n".join(lines) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting an unchanged page would make Sphinx re-read it every build.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


_SHAPE = re.compile(r"of shape \(([^)]*)\)")
_METADATA_REQUEST = re.compile(r"^set_\w+_request$")


def escape_shapes(app, what, name, obj, options, lines) -> None:
    """``of shape (n_samples, embedding_dim_)``: a fitted attribute's name in a shape.

    reStructuredText reads ``embedding_dim_`` as a link; the docstrings stay
    plain text for ``help()``, and the site escapes the underscore.
    """
    for i, line in enumerate(lines):
        lines[i] = _SHAPE.sub(
            lambda m: "of shape (" + re.sub(r"(\w)_\b", r"\1\\_", m.group(1)) + ")",
            line,
        )


def skip_metadata_requests(app, what, name, obj, skip, options):
    """scikit-learn's generated ``set_*_request`` methods: documented by sklearn."""
    if _METADATA_REQUEST.match(name):
        return True
    return None


# ------------------------------------------------------------- benchmark tables
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def _number(cell: str, nth: int = 0) -> float | None:
    found = _NUMBER.findall(cell)
    return float(found[nth].replace(",", "")) if len(found) > nth else None


def load_results(folder: Path = DOCS / "benchmarks") -> list[dict]:
    """Every results file, in its ``order`` (then by name)."""
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(results, key=lambda r: (r.get("order", 1000), r["name"]))


def plot_result(result: dict, path: Path) -> None:
    """A horizontal bar chart of the table's plotted column(s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    spec = result["plot"]
    labels = [
        " | ".join(str(row[i]) for i in spec["labels"] if str(row[i]))
        for row in result["rows"]
    ]
    series = spec["series"]
    values = np.array(
        [
            [_number(str(row[s["column"]]), s.get("nth", 0)) for s in series]
            for row in result["rows"]
        ],
        dtype=float,
    )  # a missing figure is NaN: no bar
    n, k = values.shape
    height = 0.8 / k
    fig, ax = plt.subplots(figsize=(8, 0.45 * n * max(1, k * 0.7) + 1.2))
    y = np.arange(n)
    for j, s in enumerate(series):
        bars = ax.barh(
            y + (j - (k - 1) / 2) * height, values[:, j], height, label=s["name"]
        )
        # the figure as the table prints it, at the end of its bar
        ax.bar_label(
            bars,
            labels=["" if np.isnan(v) else f"{v:g}" for v in values[:, j]],
            fontsize=7,
            padding=2,
        )
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.12)  # room for the labels
    ax.set_xlabel(spec["xlabel"])
    if k > 1:
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title(result["title"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _cell(value) -> str:
    text = str(value).replace("|", "\\|")
    return text if text.strip() else " "


def result_rst(result: dict, image: str) -> list[str]:
    """One results file as reStructuredText: title, provenance, table, plot."""
    title = result["title"]
    lines = [title, "-" * len(title), ""]
    for field in ("source", "date", "cpu", "load", "command"):
        value = result.get(field) or "not recorded"
        if field == "command":
            value = f"``{value}``"
        lines += [f":{field}: {value}"]
    lines += [""]
    if result.get("notes"):
        lines += [result["notes"], ""]
    lines += _table_rst(result)
    lines += ["", f".. image:: {image}", f"   :alt: {title}", ""]
    return lines


def _table_rst(result: dict) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [result["columns"], *result["rows"]]:
        lines.append(f"   * - {_cell(row[0])}")
        lines += [f"     - {_cell(v)}" for v in row[1:]]
    return lines


class BenchmarkTables(Directive):
    """``.. benchmark-tables::``: every file of ``docs/benchmarks/`` as a section."""

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        plots = DOCS / "benchmarks" / "_plots"
        plots.mkdir(exist_ok=True)
        env.note_dependency(__file__)  # a change to the rendering redraws
        lines: list[str] = []
        for result in load_results():
            source = DOCS / "benchmarks" / f"{result['name']}.json"
            env.note_dependency(str(source))
            png = plots / f"{result['name']}.png"
            plot_result(result, png)
            lines += result_rst(result, f"/benchmarks/_plots/{png.name}")
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, "benchmarks"), node)
        return node.children


# ---------------------------------------------------------------- gallery notes
def gallery_note(app, docname: str, source: list[str]) -> None:
    """Say on each recipe's page how its output was made (or that it was not run)."""
    if not docname.startswith("auto_examples/") or docname.endswith("index"):
        return
    stem = docname.split("/", 1)[1]
    executed = app.config.hybridml_executed_recipes
    if stem == "sg_execution_times" or stem not in app.config.hybridml_all_recipes:
        return
    if stem in executed:
        note = (
            ".. note::\n\n   The output below was produced while the site was built,"
            " in the recipe's fast mode (``HYBRIDML_FAST=1``: fewer rows, fewer"
            f" epochs). Run ``python recipes/{stem}.py`` for the full run.\n\n"
        )
    else:
        note = (
            ".. note::\n\n   This recipe is shown without running it: it takes"
            " longer than the site's build allows, even in its fast mode. Run"
            f" ``python recipes/{stem}.py`` to see its output (CI runs it in fast"
            " mode in ``tests/test_recipes.py``).\n\n"
        )
    text = source[0]
    # after the page's title (the first line underlined with '=')
    match = re.search(r"^(.+)\n=+\n", text, re.M)
    at = match.end() if match else 0
    source[0] = text[:at] + "\n" + note + text[at:]


class BenchmarkTable(Directive):
    """``.. benchmark-table:: NAME``: one results file's table, with its provenance.

    For the user guide: the same data as the benchmarks page, so the two never
    disagree. Built as docutils nodes, not parsed text: the guide's pages are
    Markdown, whose parser would read reStructuredText as plain text.
    """

    required_arguments = 1
    has_content = False

    def run(self):
        env = self.state.document.settings.env
        source = DOCS / "benchmarks" / f"{self.arguments[0]}.json"
        env.note_dependency(str(source))
        env.note_dependency(__file__)
        result = json.loads(source.read_text())
        link = addnodes.pending_xref(
            "",
            nodes.inline("", "benchmarks"),
            refdomain="std",
            reftype="doc",
            reftarget="/benchmarks/index",
            refdoc=env.docname,
            refexplicit=True,
            refwarn=True,
        )
        caption = nodes.paragraph(
            "",
            "",
            nodes.emphasis("", result["source"]),
            nodes.Text("; command "),
            nodes.literal("", result["command"]),
            nodes.Text(". Every table with its date, machine and load: "),
            link,
            nodes.Text("."),
        )
        return [_table_node(result), caption]


def _table_node(result: dict) -> nodes.table:
    """The results table as docutils nodes (plain text cells)."""
    columns = result["columns"]
    table = nodes.table(classes=["benchmark-table"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in columns)

    def row(cells):
        tr = nodes.row()
        for cell in cells:
            tr += nodes.entry("", nodes.paragraph("", str(cell)))
        return tr

    group += nodes.thead("", row(columns))
    group += nodes.tbody("", *(row(r) for r in result["rows"]))
    return table


def setup(app):
    app.add_config_value("hybridml_executed_recipes", [], "env")
    app.add_config_value("hybridml_all_recipes", [], "env")
    app.connect("builder-inited", generate_api_pages)
    # before numpydoc (priority 500) parses the sections
    app.connect("autodoc-process-docstring", escape_shapes, priority=400)
    app.connect("autodoc-skip-member", skip_metadata_requests)
    app.connect("source-read", gallery_note)
    app.add_directive("benchmark-tables", BenchmarkTables)
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
