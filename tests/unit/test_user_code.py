"""User code pickled by value keeps its file, line and source text in any process (user_code.py).

cloudpickle 3.1.3 renamed every by-value code object's file to "<dynamic-code>"; these tests
fail if a traceback raised by a script-defined function, loaded in another process, loses the
user's source line, whatever cloudpickle version is installed.
"""

import linecache
import os
import subprocess
import sys
import textwrap

from sluice.kernels import user_code

SCRIPT = textwrap.dedent("""\
    import sys
    from sluice.kernels import user_code


    def score(batch):
        def helper(value):
            return 10 // value  # the nested function's line travels too
        if batch == 0:
            raise ValueError("from the script, line 9")
        return helper(batch)


    class Scorer:
        def __call__(self, batch):
            raise KeyError("from the class, line 15")


    with open(sys.argv[1], "wb") as out:
        out.write(user_code.dumps((score, Scorer)))
""")

LOADER = textwrap.dedent("""\
    import sys, traceback
    from sluice.kernels import user_code

    score, Scorer = user_code.loads(open(sys.argv[1], "rb").read())
    for call in (lambda: score(0), lambda: Scorer()(1)):
        try:
            call()
        except Exception:
            print(traceback.format_exc())
    helper = next(c for c in score.__code__.co_consts if hasattr(c, "co_filename"))
    print("NESTED", helper.co_filename)  # nested code objects keep their file name too
""")


def _pickle_in_a_script(tmp_path, delete_script: bool) -> tuple[str, str]:
    script, payload, loader = tmp_path / "pipeline.py", tmp_path / "udf.pkl", tmp_path / "loader.py"
    script.write_text(SCRIPT)
    loader.write_text(LOADER)
    subprocess.run([sys.executable, str(script), str(payload)], check=True, timeout=60)
    if delete_script:
        os.remove(script)  # as on a Ray node that never had the script
    result = subprocess.run([sys.executable, str(loader), str(payload)], capture_output=True, text=True,
                            timeout=60, check=True)
    return str(script), result.stdout


def test_a_script_function_keeps_its_file_line_and_source_when_the_file_is_gone(tmp_path):
    script, output = _pickle_in_a_script(tmp_path, delete_script=True)
    assert f'File "{script}", line 9, in score' in output, output
    assert 'raise ValueError("from the script, line 9")' in output, output
    assert f'File "{script}", line 15, in __call__' in output, output
    assert 'raise KeyError("from the class, line 15")' in output, output
    assert "<dynamic-code>" not in output
    assert f"NESTED {script}" in output


def test_a_script_function_reads_its_source_from_the_file_where_it_exists(tmp_path):
    script, output = _pickle_in_a_script(tmp_path, delete_script=False)
    assert f'File "{script}", line 9, in score' in output
    assert 'raise ValueError("from the script, line 9")' in output


def test_remembered_lines_sit_at_their_line_numbers_beside_earlier_ones():
    name = "/nowhere/remembered.py"
    try:
        user_code.remember_lines(name, 3, ("three\n", "four\n"))
        user_code.remember_lines(name, 10, ("ten\n",))
        assert [linecache.getline(name, n) for n in (3, 4, 10)] == ["three\n", "four\n", "ten\n"]
        assert linecache.getline(name, 5) == "\n"
        linecache.checkcache(name)  # never dropped for a file that is not on disk
        assert linecache.getline(name, 4) == "four\n"
    finally:
        linecache.cache.pop(name, None)


def test_source_lines_cover_nested_functions():
    def outer():
        def inner():
            return "last line"
        return inner

    first, lines = user_code.source_lines(outer.__code__)
    assert first == outer.__code__.co_firstlineno
    assert lines[0].strip() == "def outer():" and lines[-1].strip() == "return inner"
