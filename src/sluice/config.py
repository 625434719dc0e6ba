"""Engine settings: threads, the memory budget, and where runs keep their records.

Each setting has a default that suits one machine, an environment variable, and a
`sluice.configure(...)` override, in increasing order of precedence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
from dataclasses import dataclass, replace
from typing import Iterator

import psutil

from .errors import SluiceError

DEFAULT_MEMORY_SHARE = 0.5
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1024**2,
          "g": 1e9, "gb": 1e9, "gib": 1024**3, "t": 1e12, "tb": 1e12, "tib": 1024**4}


def parse_bytes(value: int | str) -> int:
    """Parse 536870912, '512MiB', '2GB' or '1.5 GiB' into a number of bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    unit = (match.group(2) or "").lower() if match else None
    if not match or unit not in _UNITS:
        raise SluiceError(f"Cannot read {value!r} as a size. Write a number of bytes or e.g. '512MiB', '2GiB'.")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class Config:
    num_threads: int
    memory_budget: int
    runner: str
    runs_dir: str
    adaptive: bool = True
    target_partition_bytes: int = 64 * 1024 * 1024
    skew_factor: float = 5.0  # a partition is skewed above this many times the median...
    skew_min_bytes: int = 16 * 1024 * 1024  # ...and above this size
    broadcast_fraction: float = 1 / 16  # of the memory budget: the largest side a join broadcasts
    fuse_fraction: float = 1 / 8  # of the memory budget: inputs under this run joins/aggregations as one
    #                               in-memory Polars query, without exchanges (plan/fusion.py); 0 turns it off
    spill_dir: str | None = None  # default: the system temporary directory
    on_error: str = "quarantine"  # "quarantine": bad rows go to the dead-letter dataset; "raise": fail
    max_bad_records: float = 0.001  # a count (int >= 1) or a fraction of the operator's input rows
    retry_attempts: int = 3  # tries of a task that failed with a transient error, the first included
    retry_backoff_s: float = 0.2  # first backoff; doubles each retry, with jitter
    transient_errors: tuple[str, ...] = ("OSError", "TimeoutError", "ConnectionError")
    checkpoint: bool = True  # writes keep exchange outputs and a task log in the run directory, for resume
    keep_exchanges: bool = False  # keep a succeeded run's exchange files (to audit shuffle data); gc removes them
    metrics_port: int | None = None  # serve Prometheus metrics on 127.0.0.1:<port> while runs go
    metrics_host: str = "127.0.0.1"
    price_core_hour: float = 0.04  # USD per core-hour, for the run summary's cost estimate
    price_gb_hour: float = 0.005  # USD per GB-hour of memory (the memory budget)
    price_storage_gb: float = 0.0004  # USD per GB read or written (input, shuffle, output)
    ray_address: str | None = None  # runner="ray": the cluster to connect to; None starts or reuses a local Ray
    checkpoint_dir: str | None = None  # where write runs keep their run store: a path or URI; None: the run directory
    # files an overwrite replaced stay on disk this long, so that readers planned before it read their snapshot
    # whole; later commits and `sluice gc --dataset` remove them. A day covers a long job planned before the
    # commit; 0 deletes at once (safe only when nothing reads or writes the dataset meanwhile)
    snapshot_retention_s: float = 24 * 3600.0

    @property
    def broadcast_threshold(self) -> int:
        return int(self.memory_budget * self.broadcast_fraction)

    @property
    def fuse_threshold(self) -> int:
        """In-memory fusion applies below this input size; only the local runner fuses."""
        return int(self.memory_budget * self.fuse_fraction) if self.runner == "local" else 0

    @property
    def max_tasks_in_flight(self) -> int:
        return self.num_threads * 2


@functools.lru_cache(maxsize=1)
def physical_memory() -> int:
    """The machine's RAM in bytes (read once: settings are rebuilt on every current())."""
    return psutil.virtual_memory().total


def _from_environment() -> Config:
    threads = int(os.environ.get("SLUICE_NUM_THREADS") or os.cpu_count() or 1)
    budget = os.environ.get("SLUICE_MEMORY_BUDGET")
    extra = {}
    if os.environ.get("SLUICE_ON_ERROR"):
        extra["on_error"] = os.environ["SLUICE_ON_ERROR"]
    if os.environ.get("SLUICE_MAX_BAD_RECORDS"):
        extra["max_bad_records"] = parse_bad_records(os.environ["SLUICE_MAX_BAD_RECORDS"])
    if os.environ.get("SLUICE_CHECKPOINT"):
        extra["checkpoint"] = os.environ["SLUICE_CHECKPOINT"].strip().lower() not in ("0", "false", "off", "no")
    if os.environ.get("SLUICE_KEEP_EXCHANGES"):
        extra["keep_exchanges"] = os.environ["SLUICE_KEEP_EXCHANGES"].strip().lower() not in ("0", "false", "off", "no")
    if os.environ.get("SLUICE_FUSE_FRACTION"):
        extra["fuse_fraction"] = parse_fraction("fuse_fraction", os.environ["SLUICE_FUSE_FRACTION"])
    if os.environ.get("SLUICE_RAY_ADDRESS"):
        extra["ray_address"] = os.environ["SLUICE_RAY_ADDRESS"]
    if os.environ.get("SLUICE_CHECKPOINT_DIR"):
        extra["checkpoint_dir"] = os.environ["SLUICE_CHECKPOINT_DIR"]
    if os.environ.get("SLUICE_SNAPSHOT_RETENTION_S"):
        extra["snapshot_retention_s"] = parse_retention(os.environ["SLUICE_SNAPSHOT_RETENTION_S"])
    if os.environ.get("SLUICE_METRICS_PORT"):
        extra["metrics_port"] = int(os.environ["SLUICE_METRICS_PORT"])
    for key in PRICES:
        if os.environ.get(f"SLUICE_{key.upper()}"):
            extra[key] = parse_price(key, os.environ[f"SLUICE_{key.upper()}"])
    return Config(
        **extra,
        num_threads=max(1, threads),
        memory_budget=parse_bytes(budget) if budget else int(physical_memory() * DEFAULT_MEMORY_SHARE),
        runner=os.environ.get("SLUICE_RUNNER", "local"),
        runs_dir=os.environ.get("SLUICE_RUNS_DIR", os.path.join(os.path.expanduser("~"), ".sluice", "runs")),
    )


ON_ERROR = ("quarantine", "raise")
PRICES = ("price_core_hour", "price_gb_hour", "price_storage_gb")


def seconds_from_env(name: str, default: float) -> float:
    """A number of seconds from environment variable `name`, `default` when it is unset."""
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise SluiceError(f"{name}={value!r}: give a number of seconds, such as {default:g}.") from None


def parse_fraction(key: str, value) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = -1.0
    if not 0 <= fraction <= 1:
        raise SluiceError(f"{key}={value!r}: give a share of the memory budget between 0 and 1, such as 0.125 "
                          f"(0 turns it off; env SLUICE_{key.upper()}).")
    return fraction


def _at_least_zero(value, problem: str) -> float:
    """`value` as a number >= 0, else a SluiceError saying `problem`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0:
        raise SluiceError(problem)
    return number


def parse_price(key: str, value) -> float:
    return _at_least_zero(value, f"{key}={value!r}: give a price in USD as a number >= 0, such as 0.04 "
                                 f"(env SLUICE_{key.upper()}).")


def parse_retention(value) -> float:
    return _at_least_zero(value, f"snapshot_retention_s={value!r}: give the seconds replaced files stay for "
                                 f"readers, as a number >= 0, such as 3600 (env SLUICE_SNAPSHOT_RETENTION_S).")


def check_on_error(value: str) -> str:
    if value not in ON_ERROR:
        raise SluiceError(f"on_error={value!r}: use 'quarantine' (bad rows go to the dead-letter dataset and the "
                          f"job goes on) or 'raise' (the first bad row fails the job).")
    return value


def parse_bad_records(value) -> float:
    """max_bad_records: a count (an integer >= 0) or a fraction of input rows (0 < f < 1)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or (number >= 1 and number != int(number)):
        raise SluiceError(f"max_bad_records={value!r}: give a count such as 100, or a fraction of the input rows "
                          f"such as 0.001.")
    return int(number) if number >= 1 or number == 0 else number


_overrides: dict = {}


def current() -> Config:
    return replace(_from_environment(), **_overrides)


def configure(*, num_threads: int | None = None, memory_budget: int | str | None = None,
              runner: str | None = None, runs_dir: str | None = None, **engine: object) -> Config:
    """Override settings for this process; pass None to leave a setting as it is.

    Engine settings: adaptive (bool), target_partition_bytes, skew_factor, skew_min_bytes,
    broadcast_fraction, fuse_fraction (inputs under this share of the budget run joins and
    aggregations as one in-memory Polars query; 0 turns it off), spill_dir. Reliability: on_error ("quarantine" or "raise"),
    max_bad_records (a count, or a fraction of input rows), retry_attempts, retry_backoff_s,
    transient_errors (exception class names retried with backoff), checkpoint (writes keep
    exchange outputs and a task log so `sluice resume` can finish a crashed run), checkpoint_dir
    (where those live: a path or a URI such as s3://bucket/prefix; default the run directory),
    keep_exchanges (keep a succeeded run's exchange files), snapshot_retention_s (how long files that an
    overwrite replaced stay for readers planned before it; default a day). Observability:
    metrics_port (serve Prometheus metrics on 127.0.0.1:<port>), metrics_host. Cost estimate (USD):
    price_core_hour, price_gb_hour (memory budget), price_storage_gb (bytes read, shuffled, written).
    Ray runner: ray_address (an existing cluster, e.g. "ray://head:10001" or "auto"; env SLUICE_RAY_ADDRESS).
    """
    known = {"adaptive", "target_partition_bytes", "skew_factor", "skew_min_bytes", "broadcast_fraction",
             "fuse_fraction", "spill_dir",
             "on_error", "max_bad_records", "retry_attempts", "retry_backoff_s", "transient_errors", "checkpoint",
             "keep_exchanges", "metrics_port", "metrics_host", "ray_address", "checkpoint_dir", "snapshot_retention_s",
             *PRICES}
    unknown = sorted(set(engine) - known)
    if unknown:
        raise SluiceError(f"Unknown setting(s) {unknown}. Known: num_threads, memory_budget, runner, runs_dir, "
                          f"{', '.join(sorted(known))}.")
    for key, value in engine.items():
        if value is None:
            continue
        if key.endswith("_bytes"):
            value = parse_bytes(value)
        elif key == "on_error":
            value = check_on_error(value)
        elif key == "max_bad_records":
            value = parse_bad_records(value)
        elif key == "transient_errors":
            value = tuple(value)
        elif key in PRICES:
            value = parse_price(key, value)
        elif key == "fuse_fraction":
            value = parse_fraction(key, value)
        elif key == "snapshot_retention_s":
            value = parse_retention(value)
        _overrides[key] = value
    if num_threads is not None:
        if num_threads < 1:
            raise SluiceError(f"num_threads must be at least 1, got {num_threads}.")
        _overrides["num_threads"] = num_threads
    if memory_budget is not None:
        _overrides["memory_budget"] = parse_bytes(memory_budget)
    if runner is not None:
        _overrides["runner"] = runner
    if runs_dir is not None:
        _overrides["runs_dir"] = runs_dir
    return current()


@contextlib.contextmanager
def scope(**settings) -> Iterator[Config]:
    """Settings for the duration of a `with` block, then back to what they were before it.

    Takes what configure() takes: `with sluice.config(memory_budget="64MiB", fuse_fraction=0): ...`
    """
    saved = dict(_overrides)
    try:
        yield configure(**settings)
    finally:
        _overrides.clear()
        _overrides.update(saved)


@contextlib.contextmanager
def installed(config: Config) -> Iterator[Config]:
    """Exactly `config`, whatever the environment says, for the duration of a `with` block (a task that
    runs in another process under its driver's settings)."""
    saved = dict(_overrides)
    _overrides.clear()
    _overrides.update({f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
    try:
        yield config
    finally:
        _overrides.clear()
        _overrides.update(saved)
