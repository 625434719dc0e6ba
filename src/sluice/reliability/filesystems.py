"""Filesystems in a saved plan, without their secrets.

Why this module exists: a resumable run pickles its plan into the run store (run_store.py), and
a plan holds the filesystems its readers and writers were given, such as a
`pyarrow.fs.S3FileSystem(access_key=..., secret_key=..., session_token=...)`. Pickled as they
are, those carry their credentials onto disk. `PlanPickler` stores each such filesystem as its
type and its other options only; loading the plan builds it again without the secrets, so it
takes its credentials where pyarrow looks by default (AWS_ACCESS_KEY_ID and the other standard
variables, a profile, a web identity). When the filesystem had been given credentials and
nothing on this machine provides any, the resume stops with a `ResumeError` that says what to
provide, or the caller hands the filesystem over again (`sluice.resume(run_id, filesystems=[fs])`).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import threading

import pyarrow.fs as pafs

from ..errors import ResumeError
from ..kernels import user_code

# options of pyarrow's filesystems that are credentials, never written down
SECRET_OPTIONS = frozenset({"access_key", "secret_key", "session_token", "access_token", "account_key", "sas_token",
                            "client_secret", "password"})
AWS_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")

_given = threading.local()


def without_secrets(options: dict) -> tuple[dict, list[str]]:
    """`options` with every credential removed (nested ones too), and the names of those that were set."""
    kept, dropped = {}, []
    for name, value in options.items():
        if name in SECRET_OPTIONS:
            if value:
                dropped.append(name)
            continue
        if isinstance(value, dict):
            value, inner = without_secrets(value)
            dropped += [f"{name}.{n}" for n in inner]
        kept[name] = value
    return kept, dropped


def secretless_reduction(fs: pafs.FileSystem):
    """How to pickle `fs` without its credentials, or None when it has no options to hide."""
    try:
        _, args = fs.__reduce__()[:2]
    except Exception:  # noqa: BLE001 - a filesystem that does not pickle: cloudpickle says so itself
        return None
    if len(args) != 1 or not isinstance(args[0], dict):
        return None  # LocalFileSystem and the like: a URI, no options
    options, dropped = without_secrets(args[0])
    return rebuild_filesystem, (type(fs).__name__, options, tuple(dropped))


class PlanPickler(user_code.SourceKeepingPickler):
    """The plan's pickler: user code as user_code.dumps sends it, filesystems without their secrets."""

    def reducer_override(self, obj):
        if isinstance(obj, pafs.FileSystem):
            reduction = secretless_reduction(obj)
            if reduction is not None:
                return reduction
        return super().reducer_override(obj)


def dumps_plan(plan) -> bytes:
    """Pickle a plan for the run store (user_code.dumps, with filesystems saved without secrets)."""
    buffer = io.BytesIO()
    PlanPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(plan)
    return buffer.getvalue()


@contextlib.contextmanager
def filesystems_given(filesystems):
    """While a saved plan loads: filesystems the caller handed over, used in place of those of their type."""
    _given.by_type = {type(fs).__name__: fs for fs in filesystems or ()}
    try:
        yield
    finally:
        _given.by_type = {}


def rebuild_filesystem(type_name: str, options: dict, dropped: tuple[str, ...]) -> pafs.FileSystem:
    """A filesystem of a saved plan: the one the caller gave for its type, or a new one with the saved
    options, taking its credentials from the environment. See the module docstring."""
    given = getattr(_given, "by_type", {}).get(type_name)
    if given is not None:
        return given
    if dropped and type_name == "S3FileSystem" and not aws_credentials_available():
        raise ResumeError(
            f"The run used an S3FileSystem given credentials ({', '.join(dropped)}), which sluice never writes to "
            f"the run store. Provide them to resume: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
            f"AWS_SESSION_TOKEN for temporary credentials) or AWS_PROFILE, or pass the filesystem in code: "
            f"sluice.resume(run_id, filesystems=[pyarrow.fs.S3FileSystem(...)]).")
    cls = getattr(pafs, type_name)
    return cls._reconstruct(options) if hasattr(cls, "_reconstruct") else cls(**options)


def aws_credentials_available() -> bool:
    """Whether pyarrow's default AWS credential chain has something to find here (variables or files)."""
    if any(os.environ.get(name) for name in AWS_CREDENTIAL_VARIABLES):
        return True
    home = os.path.expanduser("~/.aws")
    files = [os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, "credentials"),
             os.environ.get("AWS_CONFIG_FILE") or os.path.join(home, "config")]
    return any(os.path.isfile(path) for path in files)
