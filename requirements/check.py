"""Check that pyproject.toml and the lock (requirements/*.txt) agree, naming what does not.

`pyproject.toml` keeps ranges (stageflow is also installed as a library); the lock is what
`make`, `.ci/run` and the Dockerfile install. A dependency added to one and not the other
would otherwise surface much later (an import error deep in a test, or an image that lacks
a package), so `make test` runs this first and it says which name to fix and how.

Checks:
- every requirement of pyproject (runtime, the `dev` extra, the build system) is pinned in
  the lock that installs it, at a version its range allows;
- every pin the lock says it took from pyproject (uv's `# via stageflow (pyproject.toml)`)
  is still a requirement there, so a dependency dropped from pyproject leaves the lock too;
- the runtime lock pins exactly the versions of the dev lock: the image runs what was tested.

`--print-build-requires` prints `[build-system].requires`, one a line, for `make lock` to
compile into requirements/build.txt (so those are not written down twice).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
FROM_PYPROJECT = "stageflow (pyproject.toml)"


@dataclass
class Lock:
    """One requirements file as uv writes it: the pins, and which came from pyproject."""

    path: Path
    # A universal lock may pin one name twice, at versions for different markers (a fork).
    pins: dict[str, set[Version]] = field(default_factory=dict)
    direct: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, path: Path) -> Lock:
        lock = cls(path)
        current: str | None = None
        for line in path.read_text().splitlines():
            match = PIN.match(line)
            if match:
                current = canonicalize_name(match.group(1))
                lock.pins.setdefault(current, set()).add(Version(match.group(2)))
            elif line and not line.startswith((" ", "#")):
                # Any other requirement line (a URL, an editable): the `# via` lines after
                # it are not the previous pin's.
                current = None
            elif current and line.strip().lstrip("#").strip().removeprefix("via ") == (
                FROM_PYPROJECT
            ):
                lock.direct.add(current)
        return lock

    @property
    def name(self) -> str:
        return f"requirements/{self.path.name}"


def _requirements(specs: list[str]) -> list[Requirement]:
    return [Requirement(spec) for spec in specs]


def _pinned(requirement: Requirement, lock: Lock, where: str) -> list[str]:
    """What is wrong with `requirement` (from pyproject's `where`) against `lock`."""
    name = canonicalize_name(requirement.name)
    versions = lock.pins.get(name)
    if versions is None:
        return [
            f"pyproject.toml {where} needs {requirement}, which {lock.name} does not pin: "
            "run `make lock UPGRADE=`"
        ]
    found = [
        f"{lock.name} pins {name}=={version}, outside pyproject.toml {where} {requirement}: "
        "run `make lock UPGRADE=`"
        for version in sorted(versions)
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True)
    ]
    if name not in lock.direct and lock.name != "requirements/build.txt":
        # uv marks what it took from pyproject.toml; without the mark the lock was edited
        # by hand or its format changed, and the "no longer required" check would be blind.
        found.append(
            f"{lock.name} pins {name} but does not say pyproject.toml requires it "
            f"(`# via {FROM_PYPROJECT}`): run `make lock UPGRADE=`"
        )
    return found


def _leftovers(lock: Lock, wanted: list[Requirement]) -> list[str]:
    names = {canonicalize_name(r.name) for r in wanted}
    return [
        f"{lock.name} pins {name} for stageflow, which pyproject.toml no longer requires: "
        "run `make lock UPGRADE=`"
        for name in sorted(lock.direct - names)
    ]


def problems(root: Path) -> list[str]:
    """Every disagreement between `root`'s pyproject.toml and its requirements/*.txt."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    runtime = _requirements(project["dependencies"])
    dev = _requirements(project["optional-dependencies"]["dev"])
    build = _requirements(pyproject["build-system"]["requires"])
    locks = {name: Lock.read(root / "requirements" / f"{name}.txt") for name in ("runtime", "dev")}
    locks["build"] = Lock.read(root / "requirements" / "build.txt")
    found: list[str] = []
    for requirement in runtime:
        found += _pinned(requirement, locks["runtime"], "[project].dependencies")
        found += _pinned(requirement, locks["dev"], "[project].dependencies")
    for requirement in dev:
        found += _pinned(requirement, locks["dev"], "[project.optional-dependencies].dev")
    for requirement in build:
        found += _pinned(requirement, locks["build"], "[build-system].requires")
    found += _leftovers(locks["runtime"], runtime)
    found += _leftovers(locks["dev"], runtime + dev)
    for lock in (locks["runtime"], locks["build"]):
        for name, versions in sorted(lock.pins.items()):
            tested = locks["dev"].pins.get(name)
            if tested is None and lock is locks["runtime"]:
                found.append(
                    f"{lock.name} pins {name}, which requirements/dev.txt (what the tests ran "
                    "with) does not: run `make lock`"
                )
            elif tested is not None and tested != versions:
                shown = ", ".join(str(v) for v in sorted(versions))
                found.append(
                    f"{lock.name} pins {name}=={shown} but requirements/dev.txt (what the "
                    f"tests ran with) pins {', '.join(str(v) for v in sorted(tested))}: "
                    "run `make lock`"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to check")
    parser.add_argument(
        "--print-build-requires", action="store_true", help="print [build-system].requires"
    )
    args = parser.parse_args(argv)
    if args.print_build_requires:
        pyproject = tomllib.loads((args.root / "pyproject.toml").read_text())
        print("\n".join(pyproject["build-system"]["requires"]))
        return 0
    found = problems(args.root)
    for problem in found:
        print(f"lock: {problem}", file=sys.stderr)
    if found:
        return 1
    print("lock: pyproject.toml and requirements/*.txt agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
