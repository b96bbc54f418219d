"""Outside resources missing: skipped with the reason on a developer's machine, failed in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = '''
def test_needs_postgresql(pg_database):
    pass

def test_needs_shared_data():
    from conftest import shared
    shared("no-such-folder")

def test_needs_debian_samtools(system_samtools):
    pass
'''


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_resources_skip_or_fail(tmp_path: Path, ci: str) -> None:
    tests = Path(__file__).parent
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    (tmp_path / "conftest.py").write_text((tests / "conftest.py").read_text())
    env = {
        **os.environ,
        "CI": ci,
        "WGSVAULT_TEST_PG": "postgresql://nobody@127.0.0.1:1/none",
        "PATH": "/nonexistent",  # no samtools on it
    }
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(probe)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ci:
        # the two fixtures count as errors, the helper as a failure
        assert res.returncode == 1 and "1 failed, 2 errors" in res.stdout, res.stdout
        assert "CI=true: a missing resource is a failure" in res.stdout
    else:
        assert res.returncode == 0 and "3 skipped" in res.stdout, res.stdout
        for reason in ("PostgreSQL not reachable", "shared data absent", "samtools is not"):
            assert reason in res.stdout
