"""Describe the machine and checkout a result was produced on.

Timings are meaningless without this context, so every results JSON and
every RESULTS.md section carries it.  Linux-only sources (/proc), stdlib only.
"""
import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _proc_field(path: str, key: str):
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git(*args):
    try:
        p = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None
    except OSError:
        return None


def info() -> dict:
    mem_kib = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(int(mem_kib.split()[0]) / 2**20, 1) if mem_kib else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "src")),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def busy_warning(m: dict):
    """Timings on a loaded machine are noise; say so instead of hiding it."""
    if m["loadavg_1m"] > 0.5 * m["usable_cores"]:
        return (f"load average was {m['loadavg_1m']} on {m['usable_cores']} cores "
                "when the run started: other work was running, timings are noisy")
    return None


def one_line(m: dict) -> str:
    return (f"{m['cpu_model']}, {m['usable_cores']}/{m['cores']} cores, "
            f"{m['ram_gib']} GiB RAM, {m['os']}, Python {m['python']}, "
            f"commit {(m['git_commit'] or 'none')[:10]}{' (src dirty)' if m['git_dirty'] else ''}")
