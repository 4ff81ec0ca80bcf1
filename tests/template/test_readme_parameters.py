"""The README's parameter table lists every template parameter with its real default."""

from __future__ import annotations

import re

from ipass_local.template import REPO_ROOT, load_template


def readme_parameter_rows() -> dict[str, str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("| parameter | default | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines():
        match = re.match(r"\| `(\w+)` \| ([^|]*) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def test_readme_lists_every_parameter_with_its_default() -> None:
    parameters = load_template()["Parameters"]
    rows = readme_parameter_rows()
    assert set(rows) == set(parameters)
    for name, spec in parameters.items():
        default = spec.get("Default")
        expected = "required" if default is None else ("(empty)" if default == "" else f"`{default}`")
        assert rows[name] == expected, name
