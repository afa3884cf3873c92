"""How the tier gets its browser: `make test` installs Debian's Chromium where it may, a
user names another with `make test CHROMIUM=/path`, and without one the tier fails with
the line that says what to install (it never skips, which would pass without a look)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

MISSING = "/no/such/chromium"


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_make_test_hands_the_named_chromium_to_the_tier():
    """`make test CHROMIUM=/path/to/chrome`, as the README shows it (``-n``: the commands,
    not the suite)."""
    out = _make("-n", "test", "CHROMIUM=/opt/chrome/chrome")
    assert out.returncode == 0, out.stderr
    # the fast tier first (no browser), then the rest, the browser tier with it
    fast, rest = [line for line in out.stdout.splitlines() if " -m pytest " in line]
    assert " -m fast " in fast and "CHROMIUM" not in fast
    assert shlex.split(rest)[0] == "CHROMIUM_EXECUTABLE=/opt/chrome/chrome"
    assert ' -m "not fast" ' in rest


def test_make_chromium_names_what_it_cannot_install_and_leaves_the_machine_alone():
    """A binary named elsewhere than Debian's path is not Debian's to install: the target
    says what is missing and goes on (the tier then fails, see below)."""
    out = _make("chromium", f"CHROMIUM={MISSING}")
    assert out.returncode == 0, out.stderr
    assert f"missing for the browser tests: chromium (Chromium at {MISSING})" in out.stdout
    assert "tests/browser will fail" in out.stdout
    assert "installing" not in out.stdout


def test_without_chromium_the_tier_fails_with_what_to_install(tmp_path):
    env = {**os.environ, "CHROMIUM_EXECUTABLE": MISSING, "BROWSER_OUTPUT": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
         "tests/browser/test_checks.py::test_the_checks_find_each_defect_and_pass_a_sound_page[sound]"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout[-3000:]
    # The browser fixture fails: an error of the test's setup, never a skip.
    assert "1 error" in out.stdout and "skipped" not in out.stdout, out.stdout[-3000:]
    assert f"the browser tests need Chromium at {MISSING}: on Debian" in out.stdout
