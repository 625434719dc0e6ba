"""Write deploy/requirements.lock: the exact runtime closure of `sluice[ray]`, from an environment that has it.

Why this file exists: the runtime image (deploy/Dockerfile) installs exactly these pins with
--no-deps, so the driver, the head and the workers run the same versions of sluice's
dependencies and of Ray (Ray refuses mismatched versions between driver and cluster). The
pins come from pyproject.toml's dependencies and its `ray` extra, resolved by walking the
installed distributions' metadata of the environment this runs in (no network):

    pip install '.[ray]' && python deploy/lock.py [ray requirement, default: the extra's]
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?")


def _parse(requirement: str) -> tuple[str, set[str], str]:
    """(name, extras, marker) of a requirement string."""
    text, _, marker = requirement.partition(";")
    match = NAME.match(text)
    extras = {e.strip() for e in (match.group(3) or "").split(",") if e.strip()}
    return match.group(1), extras, marker.strip()


def _applies(marker: str, extras: set[str]) -> bool:
    if not marker:
        return True
    from packaging.markers import Marker
    parsed = Marker(marker)
    return any(parsed.evaluate({"extra": e}) for e in (extras or {""}))


def closure(roots: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    todo = [_parse(r)[:2] for r in roots]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        key = (name.lower().replace("_", "-"), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(name)
        pins[dist.metadata["Name"]] = dist.version
        for requirement in dist.requires or []:
            dep, dep_extras, marker = _parse(requirement)
            if _applies(marker, extras):
                todo.append((dep, dep_extras))
    return pins


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ray = sys.argv[1:] or project["optional-dependencies"]["ray"]  # e.g. 'ray[default]' to override the extra
    pins = closure(project["dependencies"] + ray)
    lines = [f"{name}=={version}" for name, version in sorted(pins.items(), key=lambda p: p[0].lower())]
    header = (f"# The runtime closure of sluice's dependencies + {', '.join(ray)}, pinned.\n"
              f"# Regenerate: pip install '.[ray]' && python deploy/lock.py {' '.join(sys.argv[1:])}\n"
              f"# Python {sys.version_info.major}.{sys.version_info.minor}; installed with --no-deps by deploy/Dockerfile.\n")
    (ROOT / "deploy" / "requirements.lock").write_text(header + "\n".join(lines) + "\n")
    print(f"{len(lines)} pins written to deploy/requirements.lock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
