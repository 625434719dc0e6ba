"""`sluice repro`: turn one dead-letter record into a script and a pytest file that fail the same way.

When a row is quarantined, the run directory keeps what is needed to call the failing
operator again: the function's importable name where it has one, and a pickle of the
function (user_code.dumps: cloudpickle, so lambdas and functions defined in `__main__`
travel too, with their file names and source lines), or, for an expression, a pickle of the compiled expression step. The record
itself is kept as Arrow IPC bytes, so the repro feeds the function exactly the values and
types it saw. The generated files embed both and need nothing but sluice and the user's
code: fix the function until the test passes, and keep the test as a regression test.

A function or class defined in a script (`sluice run pipeline.py`) has no importable name, and
its pickle is the code as it was when the run failed, which fixing the script never changes. So
the repro loads the script's current definition instead: it runs the script's imports,
definitions and constant assignments (not its pipeline) and takes the function by its qualified
name. Where it cannot (the script is gone, or no longer defines the name), it says so and
replays the pickled code. A class UDF is constructed as the run constructed it (its
`fn_constructor_args`), then called on the record.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import textwrap

from ..errors import SluiceError
from ..kernels import user_code
from ..observe.history import read_dead_letters


def importable_name(fn) -> str | None:
    """`module:qualname` if importing that gives back this very function."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        target = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if target is fn else None


def defining_script(fn) -> str | None:
    """The absolute path of the file that defines `fn` (a function, or a class by its __call__), if any."""
    target = vars(fn).get("__call__") if isinstance(fn, type) else fn
    code = getattr(target, "__code__", None)
    if code is None or code.co_filename.startswith("<"):
        return None
    return os.path.abspath(code.co_filename)


def describe_operator(operator) -> dict:
    node = getattr(operator, "node", None)
    if node is not None and hasattr(node, "fn"):
        function = importable_name(node.fn)
        qualname = getattr(node.fn, "__qualname__", None)
        by_name = not function and qualname and "<" not in qualname  # a lambda or a nested function has none
        return {"kind": "map_batches", "function": function, "name": node.fn_name,
                "qualname": qualname, "script": defining_script(node.fn) if by_name else None,
                "is_class": isinstance(node.fn, type),
                "batch_format": node.batch_format, "fn_kwargs": repr(dict(node.fn_kwargs)),
                "description": operator.describe()}
    return {"kind": "expression", "description": operator.describe()}


def pickle_operator(operator) -> bytes:
    node = getattr(operator, "node", None)
    if node is not None and hasattr(node, "fn"):
        options = node.options
        return user_code.dumps({"fn": node.fn, "fn_kwargs": dict(node.fn_kwargs), "batch_format": node.batch_format,
                                "name": node.fn_name, "constructor_args": tuple(options.constructor_args),
                                "constructor_kwargs": dict(options.constructor_kwargs)})
    return user_code.dumps(operator)  # a PolarsStep: plain expression dataclasses


# ---------------------------------------------------------------- generating the files

def load_record(run_dir: str, index: int) -> dict:
    table = read_dead_letters(os.path.join(run_dir, "bad_records"))
    if table is None:
        raise SluiceError(f"Run directory {run_dir} has no bad records. `sluice bad-records RUN` lists a run's.")
    if not 0 <= index < table.num_rows:
        raise SluiceError(f"The run has {table.num_rows} bad record(s); --record takes 0 to {table.num_rows - 1}.")
    return table.slice(index, 1).to_pylist()[0]


def write_repro(run_dir: str, index: int, out_dir: str) -> tuple[str, str]:
    record = load_record(run_dir, index)
    if record["operator"] == "Scan":
        where = record["source_file"] + (f", line {record['row_position']}" if record["row_position"] else "")
        raise SluiceError(
            f"Record {index} is input that could not be read ({where}: {record['exception_type']}: "
            f"{record['message']}); there is no function to replay. Fix or remove that line (record_json "
            f"holds its text) or the file, and run again.")
    base = os.path.join(run_dir, "operators", record["operator_id"])
    if not os.path.exists(base + ".json"):
        raise SluiceError(f"The run directory lacks {base}.json, which describes the failing operator.")
    with open(base + ".json") as f:
        described = json.load(f)
    pickled = None
    if os.path.exists(base + ".pkl"):
        with open(base + ".pkl", "rb") as f:
            pickled = f.read()
    if pickled is None and not described.get("function"):
        raise SluiceError(f"The failing operator ({described['description']}) could not be pickled and has no "
                          f"importable name; define the function at module level to make it reproducible.")
    run_id = record["run_id"]
    stem = f"repro_{run_id.replace('-', '_')}_{index}"
    os.makedirs(out_dir, exist_ok=True)
    script = os.path.join(out_dir, f"{stem}.py")
    test = os.path.join(out_dir, f"test_{stem}.py")
    body = _module_text(record, described, pickled, index)
    with open(script, "w") as f:
        f.write(body + _SCRIPT_MAIN)
    with open(test, "w") as f:
        f.write(body + _TEST_FUNCTION.format(index=index))
    return script, test


def _module_text(record: dict, described: dict, pickled: bytes | None, index: int) -> str:
    where = record["source_file"] or "(no source file: the row came through an exchange or from memory)"
    position = record["row_position"]
    pickled_text = None if pickled is None else base64.b64encode(pickled).decode()
    script, qualname = described.get("script"), described.get("qualname")
    if described.get("function"):
        origin = f"imports {described['function']}"
    elif script:
        origin = f"loads {qualname} from {script} as it is now (else the code pickled at run time)"
    else:
        origin = "replays the code pickled at run time"
    header = textwrap.dedent(f'''\
        """Reproduces bad record {index} of sluice run {record["run_id"]}.

        Operator: {described["description"]}
        Failed with {record["exception_type"]}: {record["message"].splitlines()[0] if record["message"] else ""}
        Source: {where}{"" if position is None else f", row {position}"}
        Record: {record["record_json"][:300]}
        Code: {origin}

        Running this fails the way the run failed. Fix the function until it passes, and keep the
        test file as a regression test.
        """
        import base64
        import pickle

        import pyarrow as pa

        RECORD_IPC = base64.b64decode({base64.b64encode(record["record_ipc"]).decode()!r})
        OPERATOR_PICKLE = {pickled_text!r}
        FUNCTION_NAME = {described.get("function")!r}
        SCRIPT = {script!r}
        QUALNAME = {qualname!r}
        KIND = {described["kind"]!r}


        def load_record() -> pa.Table:
            return pa.ipc.open_stream(RECORD_IPC).read_all()


        def load_operator():
            saved = pickle.loads(base64.b64decode(OPERATOR_PICKLE)) if OPERATOR_PICKLE else {{}}
            if FUNCTION_NAME:
                import importlib
                module, qualname = FUNCTION_NAME.split(":")
                target = importlib.import_module(module)
                for part in qualname.split("."):
                    target = getattr(target, part)
                return {{**saved, "fn": target}}
            if SCRIPT:
                from sluice.reliability.repro import load_current_definition
                return {{**saved, "fn": load_current_definition(SCRIPT, QUALNAME, saved.get("fn"))}}
            return saved


        def run_record():
            """Call the failing operator on the record, as sluice did."""
            record = load_record()
            operator = load_operator()
            if KIND == "expression":
                return operator.apply(record)
            from sluice.kernels.udf import from_batch_output, to_batch_format
            fn = operator["fn"]
            if isinstance(fn, type):  # a class UDF: constructed as the run constructed it, then called
                fn = fn(*operator.get("constructor_args", ()), **operator.get("constructor_kwargs", {{}}))
            batch = to_batch_format(record, operator.get("batch_format", "arrow"))
            try:
                return from_batch_output(fn(batch, **operator.get("fn_kwargs", {{}})), "repro")
            finally:
                close = getattr(fn, "close", None) if fn is not operator["fn"] else None
                if callable(close):
                    close()
        ''')
    return header


def load_current_definition(script: str, qualname: str, pickled):
    """`qualname` as `script` defines it now: its imports, definitions and constant assignments are run
    (not its pipeline). Where that fails, a warning says why and the `pickled` code is used instead."""
    import ast
    import warnings
    try:
        with open(script) as f:
            tree = ast.parse(f.read(), script)
        kept = [node for node in tree.body if _is_definition(node)]
        namespace = {"__name__": "__sluice_repro__", "__file__": script}
        exec(compile(ast.Module(kept, type_ignores=[]), script, "exec"), namespace)  # noqa: S102 - the user's own code
        target = namespace
        for number, part in enumerate(qualname.split(".")):
            target = target[part] if number == 0 else getattr(target, part)
        return target
    except Exception as exc:  # noqa: BLE001 - any reason the script cannot give the definition
        if pickled is None:
            raise SluiceError(f"Cannot load {qualname} from {script} ({type(exc).__name__}: {exc}), and the run kept "
                              f"no pickle of it.") from exc
        warnings.warn(f"sluice repro: cannot load {qualname} from {script} ({type(exc).__name__}: {exc}); "
                      f"replaying the code pickled when the run failed, which a fix to the script does not change.",
                      stacklevel=2)
        return pickled


def _is_definition(node) -> bool:
    """A top-level statement that defines rather than does: an import, a def or class, or an assignment
    that calls nothing."""
    import ast
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        return not any(isinstance(inner, (ast.Call, ast.Await)) for inner in ast.walk(node.value))
    return False


_SCRIPT_MAIN = '''

if __name__ == "__main__":
    print(run_record())
'''

_TEST_FUNCTION = '''

def test_bad_record_{index}():
    run_record()
'''
