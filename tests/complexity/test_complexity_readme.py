"""The README's local-complexity example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_local_complexity_example_runs():
    text = README.read_text()
    section = text[text.index("## Local complexity"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), ns)
    assert abs(ns["lines"].value - ns["exact"].value) <= 5 * ns["lines"].stderr
    assert ns["tv"].gradient_tv <= ns["tv"].bound
