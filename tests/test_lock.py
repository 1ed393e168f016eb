"""requirements/check.py: the lock and pyproject.toml agree, and each disagreement is named.

Run on a copy of the checkout's files, changed the way a developer would get them wrong."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "requirements" / "check.py"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_the_checkout_agrees() -> None:
    done = check(ROOT)
    assert done.returncode == 0, done.stderr
    assert "agree" in done.stdout


def test_a_dependency_added_to_pyproject_only_is_named(checkout: Path) -> None:
    edit(
        checkout / "pyproject.toml", '"cachetools>=5.3",', '"cachetools>=5.3",\n    "tenacity>=8",'
    )
    done = check(checkout)
    assert done.returncode == 1
    assert "needs tenacity>=8, which requirements/runtime.txt does not pin" in done.stderr
    assert "make lock" in done.stderr


def test_a_dependency_dropped_from_pyproject_is_named(checkout: Path) -> None:
    edit(checkout / "pyproject.toml", '    "cachetools>=5.3",\n', "")
    done = check(checkout)
    assert done.returncode == 1
    assert (
        "requirements/runtime.txt pins cachetools for stageflow, which pyproject.toml no "
        "longer requires"
    ) in done.stderr


def test_a_range_the_lock_falls_outside_is_named(checkout: Path) -> None:
    pinned = re.search(r"^redis==(\S+)", (checkout / "requirements/dev.txt").read_text(), re.M)
    assert pinned is not None
    edit(checkout / "pyproject.toml", '"redis>=8.1",', '"redis>=99",')
    done = check(checkout)
    assert done.returncode == 1
    assert f"pins redis=={pinned.group(1)}, outside pyproject.toml" in done.stderr


def test_an_image_pin_that_differs_from_the_tested_one_is_named(checkout: Path) -> None:
    runtime = checkout / "requirements" / "runtime.txt"
    pinned = re.search(r"^(fastapi==(\S+)) ", runtime.read_text(), re.M)
    assert pinned is not None
    edit(runtime, pinned.group(1), "fastapi==0.135.0")
    done = check(checkout)
    assert done.returncode == 1
    assert (
        "requirements/runtime.txt pins fastapi==0.135.0 but requirements/dev.txt (what the "
        f"tests ran with) pins {pinned.group(2)}"
    ) in done.stderr


def test_a_build_requirement_missing_from_the_build_lock_is_named(checkout: Path) -> None:
    edit(checkout / "pyproject.toml", '"wheel"]', '"wheel", "setuptools-scm>=8"]')
    done = check(checkout)
    assert done.returncode == 1
    assert "needs setuptools-scm>=8, which requirements/build.txt does not pin" in done.stderr


def test_a_pin_the_lock_does_not_attribute_to_pyproject_is_named(checkout: Path) -> None:
    """A lock edited by hand (or a changed uv format) loses the `# via` line the check
    relies on: said, rather than the leftover check going blind."""
    runtime = checkout / "requirements" / "runtime.txt"
    text = runtime.read_text()
    mark = text.index("stageflow (pyproject.toml)", text.index("\ncachetools=="))
    runtime.write_text(
        text[:mark] + "cel-python" + text[mark + len("stageflow (pyproject.toml)") :]
    )
    done = check(checkout)
    assert done.returncode == 1
    assert (
        "requirements/runtime.txt pins cachetools but does not say pyproject.toml requires it"
    ) in done.stderr


def test_every_version_of_a_forked_pin_is_checked(checkout: Path) -> None:
    """A universal lock may pin a name twice for different markers: a fork outside the
    range is named even when the other fork is inside it."""
    dev = checkout / "requirements" / "dev.txt"
    pinned = re.search(r"^redis==(\S+) \\\n", dev.read_text(), re.M)
    assert pinned is not None
    edit(
        dev,
        pinned.group(0),
        "redis==7.0.0 ; sys_platform == 'win32'\n    # via stageflow (pyproject.toml)\n"
        + pinned.group(0),
    )
    done = check(checkout)
    assert done.returncode == 1
    assert "requirements/dev.txt pins redis==7.0.0, outside pyproject.toml" in done.stderr
    assert "requirements/runtime.txt pins redis" in done.stderr  # differs from the tested set
