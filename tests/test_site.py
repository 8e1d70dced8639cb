"""The documentation site tells the truth and is complete.

Source checks run everywhere; checks of the built site need ``make docs`` first
(``make test`` builds it before pytest runs) and are skipped without it.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

import hybridml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HTML = DOCS / "_build" / "html"
RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.py"))
FIELDS = ("name", "title", "date", "cpu", "load", "command", "source", "columns")


def _built() -> Path:
    if not (HTML / "index.html").exists():
        pytest.skip("the site is not built: run `make docs`")
    return HTML


def _harness():
    spec = importlib.util.spec_from_file_location(
        "bench_harness", ROOT / "benchmarks" / "_harness.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_result(result: dict) -> None:
    """One benchmark results file follows the schema the site renders."""
    for field in FIELDS:
        assert str(result.get(field, "")).strip(), f"{result.get('name')}: {field}"
    width = len(result["columns"])
    assert result["rows"], result["name"]
    for row in result["rows"]:
        assert len(row) == width, f"{result['name']}: {row} has not {width} cells"
    plot = result["plot"]
    assert all(0 <= i < width for i in plot["labels"]), result["name"]
    assert plot["series"], result["name"]
    for series in plot["series"]:
        assert 0 <= series["column"] < width, result["name"]


@pytest.mark.parametrize(
    "path", sorted((DOCS / "benchmarks").glob("*.json")), ids=lambda p: p.stem
)
def test_benchmark_results_follow_the_schema(path):
    result = json.loads(path.read_text())
    assert result["name"] == path.stem
    check_result(result)


def test_transcribed_results_say_where_they_come_from():
    for path in (DOCS / "benchmarks").glob("*.json"):
        source = json.loads(path.read_text())["source"]
        assert source.startswith(("transcribed from README", "written by make bench"))


def test_the_harness_writes_the_schema_the_site_renders(tmp_path, monkeypatch):
    harness = _harness()
    monkeypatch.setattr(harness, "uptime", lambda: "load average: 0.10")
    path = harness.write_results(
        "demo_speed",
        title="A demo table",
        columns=["engine", "rows per CPU-second"],
        rows=[["a", "12.5 [12.0-13.1]"], ["b", 3]],
        load="quiet",
        folder=tmp_path,
    )
    result = json.loads(path.read_text())
    check_result(result)
    assert result["source"].startswith("written by make bench, measured ")
    assert result["rows"][1] == ["b", "3"]
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        harness.write_results(
            "bad", title="t", columns=["a", "b"], rows=[["x"]], load="", folder=tmp_path
        )


def test_every_public_name_has_an_api_page():
    html = _built()
    missing = [n for n in hybridml.__all__ if not (html / "api" / f"{n}.html").exists()]
    assert not missing, f"no API page for {missing}"


def test_every_recipe_has_a_gallery_page_that_says_how_it_ran():
    html = _built()
    for stem in RECIPES:
        page = html / "auto_examples" / f"{stem}.html"
        assert page.exists(), f"no gallery page for recipes/{stem}.py"
        text = page.read_text()
        assert (
            "produced while the site was built" in text
            or "shown without running it" in text
        ), stem


def _readme_links() -> list[str]:
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # not inside code blocks
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


def _built_target(link: str, html: Path) -> tuple[Path, str]:
    """README's link into docs/ -> the built file and its anchor."""
    path, _, anchor = link.partition("#")
    assert path.startswith("docs/"), (
        f"README link {link!r}: links point into docs/ (a page of the site)"
    )
    source = ROOT / path
    assert source.exists(), f"README link {link!r}: {source} does not exist"
    relative = Path(path).relative_to("docs")
    if source.suffix in (".md", ".rst"):
        return html / relative.with_suffix(".html"), anchor
    # an image or a file: the site copies it next to the page or into _images
    for candidate in (html / relative, html / "_images" / relative.name):
        if candidate.exists():
            return candidate, anchor
    return html / relative, anchor


def test_every_readme_link_resolves_inside_the_built_site():
    html = _built()
    links = _readme_links()
    assert links, "README links into the site"
    for link in links:
        target, anchor = _built_target(link, html)
        assert target.exists(), f"README link {link!r}: {target} was not built"
        if anchor:
            assert f'id="{anchor}"' in target.read_text(), (
                f"README link {link!r}: no anchor {anchor!r} in {target}"
            )


def test_the_harness_summary_table_has_medians_ratios_and_first_calls():
    harness = _harness()

    def run(n, cpu, wall):
        return {"n": n, "cpu": cpu, "wall": wall, "first_cpu": 3.0, "first_wall": 2.0}

    runs = {
        "ref": [run(100, 2.0, 1.0), run(100, 1.0, 1.0), run(100, 4.0, 1.0)],
        "fast": [run(100, 1.0, 0.5)] * 3,
    }
    columns, rows = harness.summary_table(runs, "ref", "sent")
    assert columns[1] == "timed call: sent per CPU-second"
    assert rows[0][:4] == [
        "ref",
        "50.0 [25.0-100.0]",
        "100.0 [100.0-100.0]",
        "1.00 / 1.00",
    ]
    assert rows[1][3] == "2.00 / 2.00" and rows[1][4:] == ["3.0", "2.0"]
    _, busy = harness.summary_table(runs, "ref", "sent", ratios=False)
    assert busy[1][3] == ""


def test_guide_pages_render_their_directives():
    """No directive leaks into a built guide page as text (a MyST page parses
    what a directive returns as Markdown, not reStructuredText)."""
    html = _built()
    for page in sorted((html / "guide").glob("*.html")):
        text = page.read_text()
        for leak in (".. list-table::", "```{", ".. image::", ":header-rows:"):
            assert leak not in text, f"{page.name} shows {leak!r} as text"
