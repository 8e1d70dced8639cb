"""report.html: self-contained, and holding what a person needs to judge the run."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from _baseline_data import text_frame

from hybridml.baseline import write_report
from hybridml.baseline.html_report import TRAIN_SIZES, write_html
from hybridml.baseline.run import run_steps
from hybridml.datasets import load_wine

SETTINGS = dict(
    text=(), image=(), tabular="auto", groups=None, backbones=(), cv=3,
    metric=None, task="auto", limit=None, random_state=0, n_jobs=None,
)  # fmt: skip


class Page(HTMLParser):
    """Tables by id (rows of cell texts), images, and every link or source."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.refs, self.text = {}, [], [], []
        self._table = self._row = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs:
                self.refs.append(attrs[key])
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag == "img":
            self.images.append(attrs.get("alt"))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None and data.strip():
            self._row.append(data.strip())


def _page(session, folder, command="hybridml baseline x.csv --target label"):
    write_report(session.board, folder)
    path = write_html(session, folder, command)
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def wine_page(tmp_path_factory):
    session = run_steps(
        load_wine(), target="label", heads="logreg", stack=2, **SETTINGS
    )
    return session, _page(session, tmp_path_factory.mktemp("html"))


def test_report_is_self_contained(wine_page):
    _, page = wine_page
    assert page.refs and all(r.startswith("data:image/png;base64,") for r in page.refs)
    assert {"scores per fold", "confusion matrix", "learning curve"} <= set(page.images)


def test_leaderboard_table_matches_the_board(wine_page):
    session, page = wine_page
    rows = page.tables["leaderboard"]
    assert rows[0][:5] == ["rank", "features", "head", "kind", "mean"]
    board = session.board
    assert len(rows) - 1 == len(board)
    for cells, (_, r) in zip(rows[1:], board.iterrows(), strict=True):
        assert cells[1] == r["features"] and float(cells[4]) == pytest.approx(
            r["mean"], abs=1e-4
        )
        assert float(cells[6]) == pytest.approx(min(r["scores"]), abs=1e-4)


def test_best_model_has_per_class_scores_and_learning_curve(wine_page):
    _, page = wine_page
    per_class = page.tables["per-class"]
    assert [c[0] for c in per_class[1:]] == ["class_0", "class_1", "class_2"]
    assert sum(int(c[4]) for c in per_class[1:]) == 178  # support: every row once
    assert all(0.8 < float(c[3]) <= 1.0 for c in per_class[1:])  # wine is easy
    curve = page.tables["learning-curve"]
    assert len(curve) - 1 == len(TRAIN_SIZES)
    sizes = [int(c[0]) for c in curve[1:]]
    assert sizes == sorted(sizes) and sizes[-1] == 118  # 2/3 of 178 rows


def test_data_summary_and_command(wine_page):
    _, page = wine_page
    text = " ".join(page.text)
    assert "178, task classification" in text
    assert "class_0: 59, class_1: 71, class_2: 48" in text
    assert "numeric" in text and "alcohol" in text
    assert "hybridml baseline x.csv --target label" in text
    assert re.search(r"logreg: C in \[0\.1, 1\.0, 10\.0\]", text)


def test_regression_report_has_residuals(tmp_path):
    wine = load_wine().drop(columns="label")
    session = run_steps(wine, target="alcohol", heads="logreg", stack=0, **SETTINGS)
    page = _page(session, tmp_path)
    assert "residual plot" in page.images and "confusion matrix" not in page.images
    assert "RMSE out of fold" in " ".join(page.text)


def test_deep_rows_get_the_learning_curve(text_preset, tmp_path):
    session = run_steps(
        text_frame(12), target="label", heads="logreg", stack=0,
        **{**SETTINGS, "text": "review", "tabular": None,
           "backbones": [str(text_preset)]},
    )  # fmt: skip
    page = _page(session, tmp_path)
    assert f"Learning curve: {text_preset.name} + logreg" in " ".join(page.text)
