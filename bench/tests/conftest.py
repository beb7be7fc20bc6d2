"""Fixtures shared by the bench tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def charts(request, monkeypatch, tmp_path):
    """report.py's bar charts without matplotlib: the calls are recorded.

    The report module is the test module's own ``report`` (bench/report.py as it loaded it)."""
    report = request.module.report
    drawn = []

    def bar_chart(labels, figs, title, filename, width, colours):
        drawn.append({"labels": labels, "figs": figs, "title": title, "filename": filename, "colours": colours})
        return Path("benchmarks") / filename

    monkeypatch.setattr(report, "bar_chart", bar_chart)
    monkeypatch.setattr(report, "REPO", tmp_path)
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(report, "DOC", tmp_path / "benchmarks.md")
    (tmp_path / "results").mkdir()
    return drawn
