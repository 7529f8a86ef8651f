"""The README's set-up commands are the ones CI runs, and its Python example runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Set-up.*?```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_two_setup_commands_and_ci_runs_the_test_one():
    install_demo, install_test = readme_commands()
    assert "faceptor demo" in install_demo and install_demo.startswith("pip install")
    assert "pytest" in install_test
    assert install_test in (ROOT / ".ci" / "run").read_text()
