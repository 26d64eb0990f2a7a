"""The README's first code block is the project's contract: install + main job, then the tests.

CI (.ci/run) must run exactly those commands, and the install must not depend on a `python` on
PATH or on pip being allowed into the system interpreter (PEP 668).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no ```bash block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_gives_exactly_two_commands_that_use_the_project_venv():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert cmds[0].startswith("bash scripts/install.sh && .venv/bin/python -m ")
    assert cmds[1].startswith(".venv/bin/python -m pytest")


def test_ci_runs_exactly_the_readme_commands_in_order():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    cmds = _readme_commands()
    ran = [ln for ln in lines if ln in cmds]
    assert ran == cmds, f".ci/run runs {ran}, the README says {cmds}"


def test_install_script_uses_a_virtual_environment_not_the_system_pip():
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert "-m venv .venv" in script
    pip_lines = [ln for ln in script.splitlines() if "pip install" in ln and not ln.lstrip().startswith("#")]
    assert pip_lines and all(ln.lstrip().startswith(".venv/bin/python -m pip") for ln in pip_lines)
