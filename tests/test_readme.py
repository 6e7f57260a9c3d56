"""The README's Python example runs as written, and its numbers are the benchmarks'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "customer_id" in printed and "churn_probability" in printed
    assert (tmp_path / "mlflow.db").is_file() and (tmp_path / "models" / "champion").is_file()


@pytest.mark.parametrize("doc", ["README.md", "docs/performance.md"])
def test_the_performance_numbers_are_the_committed_results(doc: str) -> None:
    """Rendered from benchmarks/results by `python -m benchmarks.report`, never typed."""
    from benchmarks.report import generated, wanted

    assert generated(doc) == wanted(doc), f"{doc}: run `python -m benchmarks.report`"
    assert "| goal | measured |" in wanted("docs/performance.md")
