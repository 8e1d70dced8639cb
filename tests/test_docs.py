"""Documentation tells the truth: README code runs, docstrings match signatures."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import textwrap
from pathlib import Path

import pytest

import hybridml

ROOT = Path(__file__).resolve().parents[1]


def _documented_parameters(doc: str) -> list[str]:
    """Names in the numpydoc ``Parameters`` section of a docstring."""
    doc = inspect.cleandoc(doc)
    match = re.search(r"^Parameters\n-+\n(.*?)(?=^\w[\w ]*\n-+\n|\Z)", doc, re.S | re.M)
    if not match:
        return []
    names = []
    for line in match.group(1).splitlines():
        m = re.match(r"^(\*{0,2}\w+)\s*:", line)
        if m:
            names.append(m.group(1).lstrip("*"))
    return names


def _public_callables():
    for name in hybridml.__all__:
        obj = getattr(hybridml, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield name, obj


@pytest.mark.parametrize("name", [n for n, _ in _public_callables()])
def test_documented_parameters_match_the_signature(name):
    obj = getattr(hybridml, name)
    assert obj.__doc__, f"{name} has no docstring"
    target = obj.__init__ if inspect.isclass(obj) else obj
    signature = [
        p.name
        for p in inspect.signature(target).parameters.values()
        if p.name != "self"
    ]
    documented = _documented_parameters(obj.__doc__)
    assert documented == signature, (
        f"{name}: docstring Parameters {documented} != signature {signature}"
    )


@pytest.mark.parametrize("name", [n for n, _ in _public_callables()])
def test_public_docstrings_have_runnable_examples(name):
    doc = getattr(hybridml, name).__doc__ or ""
    assert "Examples\n" in inspect.cleandoc(doc) and ">>>" in doc, (
        f"{name} needs an Examples section with doctests"
    )


def _readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _stats_of_one_embedding_each(out: str) -> None:
    stats = ast.literal_eval(out.strip())
    # 50 snippets, each embedded and written once; the stack: all cache hits
    assert stats["rows"] == stats["written"] == stats["misses"] == 50, stats
    assert stats["hits"] > 0 and stats["evicted"] == 0


def _grid_search_answer(out: str) -> None:
    params, shape = out.strip().rsplit("} ", 1)
    assert set(ast.literal_eval(params + "}")) == {
        "kerasclassifier__model__hidden",
        "kerasclassifier__optimizer__learning_rate",
    }
    assert shape == "(3, 2)"  # three rows, two classes


def _accuracy_on_40_rows(out: str) -> None:
    score = float(out.strip())
    assert 0 <= score <= 1 and abs(score * 40 - round(score * 40)) < 1e-9


# What each README block prints, found by a line of its code: the values that do
# not depend on the machine (the rest is checked for its form).
README_OUTPUT = {
    'print(model.predict(["what a wonderful film", "boring and slow"]))': "[1 0]\n",
    "print(Z.shape, embed.pooling_, embed.normalize_, embed.sequence_length_)": (
        "(3, 384) mean True 256\n"
    ),
    "print(cache.stats())": _stats_of_one_embedding_each,
    "print(search.best_params_, search.predict_proba(X[200:203]).shape)": (
        _grid_search_answer
    ),
    "print(setfit.score(texts[1000:1040], labels[1000:1040]))": _accuracy_on_40_rows,
    "print(Z.compute().shape)  # (100, 384)": "(100, 384)\n",
}


def test_every_readme_output_check_finds_its_block():
    """Each checked line stands in exactly one block of README or the guide."""
    blocks = _readme_python_blocks() + [code for _, code in _guide_python_blocks()]
    for line in README_OUTPUT:
        assert sum(line in code for code in blocks) >= 1, line


def _check_output(code: str, printed: str) -> None:
    for line, expected in README_OUTPUT.items():
        if line in code:
            if callable(expected):
                expected(printed)
            else:
                assert printed == expected


@pytest.mark.parametrize("index", range(len(_readme_python_blocks())))
def test_readme_python_examples_run(index, tmp_path, monkeypatch):
    """Every ```python block in README runs (blocks marked `# no-test` excepted)
    and prints what README_OUTPUT says it prints."""
    code = _readme_python_blocks()[index]
    if "# no-test" in code:
        pytest.skip("README block marked # no-test (needs a network or a GPU)")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README.md[python block {index}]", "exec"), {})
    _check_output(code, printed.getvalue())


def _guide_python_blocks() -> list[tuple[str, str]]:
    """(page, code) of every ```python block of the user guide (docs/guide)."""
    blocks = []
    for page in sorted((ROOT / "docs" / "guide").glob("*.md")):
        text = page.read_text()
        # blocks may sit indented inside a list-table (side-by-side code)
        fences = r"^[ *-]*```python\n(.*?)^ *```$"  # "* - ```python" in a table
        for match in re.finditer(fences, text, re.S | re.M):
            blocks.append((page.name, textwrap.dedent(match.group(1))))
    return blocks


@pytest.mark.parametrize(
    "page, code",
    _guide_python_blocks(),
    ids=[f"{page}-{i}" for i, (page, _) in enumerate(_guide_python_blocks())],
)
def test_guide_python_examples_run(page, code, tmp_path, monkeypatch):
    """Every ```python block of the user guide runs (`# no-test` blocks excepted).

    The guide's ``>>>`` examples run as doctests in `make docs`.
    """
    if "# no-test" in code:
        pytest.skip(f"{page}: block marked # no-test (another library, a cluster)")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"docs/guide/{page}", "exec"), {})
    _check_output(code, printed.getvalue())


def test_changelog_has_an_unreleased_section():
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
