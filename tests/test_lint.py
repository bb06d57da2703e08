"""The code passes the ruff configuration in pyproject.toml (no scattered noqa comments)."""
import subprocess
import sys

from conftest import REPO


def test_ruff_passes():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "svhn_jax", "configs", "scripts", "tests"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_no_noqa_comments():
    offenders = [str(p.relative_to(REPO)) for d in ("svhn_jax", "configs", "scripts", "tests")
                 for p in (REPO / d).rglob("*.py") if "# " + "noqa" in p.read_text()]
    assert offenders == []
