"""Paths on S3 (moto's server on loopback) work like local ones: read, prune, write, commit."""


import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from conftest import moto_s3

import sluice as sl
from sluice import col

pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3():
    with moto_s3("lake", set_environment=True) as (fs, _):
        yield fs


def test_write_and_read_s3_uri_with_partition_pruning(s3, runner):
    path = f"lake/numbers-{runner}"  # both runner params share the module's S3 server
    result = sl.range(1000).with_columns(k=col("id") % 4).write_parquet(f"s3://{path}", partition_by=["k"])
    assert result.rows == 1000
    names = [i.path for i in s3.get_file_info(pafs.FileSelector(path, recursive=True))]
    assert f"{path}/_SUCCESS" in names
    assert not any("_sluice_staging" in n for n in names)
    back = sl.read_parquet(f"s3://{path}", filter=col("k") == 2).to_arrow()
    assert sorted(back["id"].to_pylist()) == list(range(2, 1000, 4))
    assert set(back["k"].to_pylist()) == {2}


def test_explicit_filesystem_and_text_formats(s3, runner):
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    sl.from_arrow(table).write_csv(f"lake/csv-{runner}", filesystem=s3)
    sl.from_arrow(table).write_json(f"lake/json-{runner}", filesystem=s3)
    assert sl.read_csv(f"lake/csv-{runner}", filesystem=s3).to_arrow().to_pylist() == table.to_pylist()
    assert sl.read_json(f"s3://lake/json-{runner}").filter(col("a") > 1).count() == 2


def test_missing_s3_path_is_named(s3, runner):
    with pytest.raises(sl.SourceNotFoundError, match="s3://lake/nothing-here"):
        sl.read_parquet("s3://lake/nothing-here")
