"""`sluice repro`: turn one dead-letter record into a script and a pytest file that fail the same way.

When a row is quarantined, the run directory keeps what is needed to call the failing
operator again: the function's importable name where it has one, and a pickle of the
function (user_code.dumps: cloudpickle, so lambdas and functions defined in `__main__`
travel too, with their file names and source lines), or, for an expression, a pickle of the compiled expression step. The record
itself is kept as Arrow IPC bytes, so the repro feeds the function exactly the values and
types it saw. The generated files embed both and need nothing but sluice and the user's
code: fix the function until the test passes, and keep the test as a regression test.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import textwrap

import pyarrow.parquet as pq

from ..errors import SluiceError
from ..kernels import user_code


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


def describe_operator(operator) -> dict:
    node = getattr(operator, "node", None)
    if node is not None and hasattr(node, "fn"):
        return {"kind": "map_batches", "function": importable_name(node.fn), "name": node.fn_name,
                "batch_format": node.batch_format, "fn_kwargs": repr(dict(node.fn_kwargs)),
                "description": operator.describe()}
    return {"kind": "expression", "description": operator.describe()}


def pickle_operator(operator) -> bytes:
    node = getattr(operator, "node", None)
    if node is not None and hasattr(node, "fn"):
        return user_code.dumps({"fn": node.fn, "fn_kwargs": dict(node.fn_kwargs), "batch_format": node.batch_format,
                        "name": node.fn_name})
    return user_code.dumps(operator)  # a PolarsStep: plain expression dataclasses


# ---------------------------------------------------------------- generating the files

def load_record(run_dir: str, index: int) -> dict:
    directory = os.path.join(run_dir, "bad_records")
    if not os.path.isdir(directory):
        raise SluiceError(f"Run directory {run_dir} has no bad records. `sluice bad-records RUN` lists a run's.")
    table = pq.read_table(directory)
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
    header = textwrap.dedent(f'''\
        """Reproduces bad record {index} of sluice run {record["run_id"]}.

        Operator: {described["description"]}
        Failed with {record["exception_type"]}: {record["message"].splitlines()[0] if record["message"] else ""}
        Source: {where}{"" if position is None else f", row {position}"}
        Record: {record["record_json"][:300]}

        Running this fails the way the run failed. Fix the function until it passes, and keep the
        test file as a regression test.
        """
        import base64
        import pickle

        import pyarrow as pa

        RECORD_IPC = base64.b64decode({base64.b64encode(record["record_ipc"]).decode()!r})
        OPERATOR_PICKLE = {pickled_text!r}
        FUNCTION_NAME = {described.get("function")!r}
        KIND = {described["kind"]!r}


        def load_record() -> pa.Table:
            return pa.ipc.open_stream(RECORD_IPC).read_all()


        def load_operator():
            if FUNCTION_NAME:
                import importlib
                module, qualname = FUNCTION_NAME.split(":")
                target = importlib.import_module(module)
                for part in qualname.split("."):
                    target = getattr(target, part)
                saved = pickle.loads(base64.b64decode(OPERATOR_PICKLE)) if OPERATOR_PICKLE else {{}}
                return {{**saved, "fn": target}}
            return pickle.loads(base64.b64decode(OPERATOR_PICKLE))


        def run_record():
            """Call the failing operator on the record, as sluice did."""
            record = load_record()
            operator = load_operator()
            if KIND == "expression":
                return operator.apply(record)
            from sluice.kernels.udf import from_batch_output, to_batch_format
            batch = to_batch_format(record, operator.get("batch_format", "arrow"))
            return from_batch_output(operator["fn"](batch, **operator.get("fn_kwargs", {{}})), "repro")
        ''')
    return header


_SCRIPT_MAIN = '''

if __name__ == "__main__":
    print(run_record())
'''

_TEST_FUNCTION = '''

def test_bad_record_{index}():
    run_record()
'''
