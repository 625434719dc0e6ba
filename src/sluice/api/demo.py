"""`sluice demo`: build a small, realistic lake and run a pipeline that shows the engine.

The lake has a week of clickstream events, hive-partitioned by date, where one user produces
a large share of the events (a skewed key, as real traffic has); a users table; and a
late-arriving NDJSON drop that contains malformed rows. The pipeline prunes partitions,
cleans the late drop while keeping every rejected row on record, unions, enriches with an
Arrow-native batch function, writes partitioned Parquet, and prints what it did.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EVENT_TYPES = np.array(["view", "view", "view", "click", "click", "add_to_cart", "purchase"])
COUNTRIES = np.array(["DE", "FR", "US", "GB", "BR", "IN", "JP", "NL"])
PATHS = np.array(["/", "/search", "/product/42", "/product/7", "/cart", "/checkout", "/help"])
DAYS = 7
START = dt.datetime(2026, 11, 1)


def generate_lake(root: str, rows: int, seed: int = 7) -> dict[str, str]:
    """Write the demo lake under `root`; return the paths of its parts."""
    rng = np.random.default_rng(seed)
    users = max(1000, rows // 50)
    user_ids = rng.zipf(1.3, rows) % users  # a few users produce most of the traffic
    user_ids[rng.random(rows) < 0.25] = 1  # and user 1 is a bot holding a quarter of it
    seconds = rng.integers(0, DAYS * 86400, rows)
    event_type = EVENT_TYPES[rng.integers(0, len(EVENT_TYPES), rows)]
    amount = np.where(event_type == "purchase", np.round(rng.gamma(2.0, 30.0, rows), 2), np.nan)
    events = pa.table({
        "event_id": pa.array(np.arange(rows, dtype=np.int64)),
        "user_id": pa.array(user_ids.astype(np.int64)),
        "ts": pa.array((np.datetime64(START, "us") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")),
        "event_type": pa.array(event_type),
        "path": pa.array(PATHS[rng.integers(0, len(PATHS), rows)]),
        "amount": pa.array(amount, from_pandas=True),
        "date": pa.array((START.date() + dt.timedelta(days=int(d))).isoformat() for d in seconds // 86400),
    })
    events_dir = os.path.join(root, "events")
    for day in range(DAYS):
        date = (START.date() + dt.timedelta(days=day)).isoformat()
        part = events.filter(pc.equal(events["date"], date)).drop_columns(["date"])
        os.makedirs(os.path.join(events_dir, f"date={date}"), exist_ok=True)
        for i, start in enumerate(range(0, part.num_rows, max(1, part.num_rows // 4 + 1))):
            pq.write_table(part.slice(start, part.num_rows // 4 + 1),
                           os.path.join(events_dir, f"date={date}", f"part-{i}.parquet"), row_group_size=65536)

    users_path = os.path.join(root, "users.parquet")
    pq.write_table(pa.table({
        "user_id": pa.array(np.arange(users, dtype=np.int64)),
        "country": pa.array(COUNTRIES[rng.integers(0, len(COUNTRIES), users)]),
        "plan": pa.array(np.where(rng.random(users) < 0.1, "pro", "free")),
        "signup_date": pa.array(START.date() - dt.timedelta(days=int(d)) for d in rng.integers(1, 900, users)),
    }), users_path)

    late_path = os.path.join(root, "late", "late-events.jsonl")
    os.makedirs(os.path.dirname(late_path), exist_ok=True)
    late_rows = max(100, rows // 100)
    with open(late_path, "w") as out:
        for i in range(late_rows):
            record = {"event_id": rows + i, "user_id": int(rng.integers(0, users)),
                      "ts": (START + dt.timedelta(seconds=int(rng.integers(0, DAYS * 86400)))).isoformat(),
                      "event_type": str(EVENT_TYPES[rng.integers(0, len(EVENT_TYPES))]),
                      "path": str(PATHS[rng.integers(0, len(PATHS))]), "amount": None}
            if record["event_type"] == "purchase":
                record["amount"] = round(float(rng.gamma(2.0, 30.0)), 2)
            if i % 97 == 13:
                record["user_id"] = None  # malformed: no user
            if i % 89 == 5:
                record["amount"] = -abs(record["amount"] or 9.99)  # malformed: negative money
            out.write(json.dumps(record) + "\n")
    return {"events": events_dir, "users": users_path, "late": late_path}


def add_session_bucket(batch: pa.Table) -> pa.Table:
    """An Arrow-native batch function: 30-minute session buckets and a page family."""
    bucket = pc.divide(pc.cast(batch["ts"], pa.int64()), 30 * 60 * 1_000_000)
    family = pc.replace_substring_regex(batch["path"], r"^/([a-z]*).*$", r"\1")
    return batch.append_column("session_bucket", bucket).append_column("page_family", family)


def run_demo(directory: str | None = None, rows: int = 1_000_000) -> None:
    import sluice as sl
    from sluice import col, lit, when
    from sluice.observe.stats import report_console

    console = report_console()
    root = directory or tempfile.mkdtemp(prefix="sluice-demo-")
    os.makedirs(root, exist_ok=True)
    console.rule("[bold]sluice demo")
    console.print(f"Generating a lake of {rows:,} click events under {root} ...")
    lake = generate_lake(root, rows)

    events = sl.read_parquet(lake["events"], filter=col("date") >= "2026-11-04")  # prunes 3 of 7 days
    late = sl.read_json(lake["late"])
    is_valid = col("user_id").is_not_null() & (col("amount").is_null() | (col("amount") >= 0))
    rejected = late.filter(~is_valid)
    late_clean = (
        late.filter(is_valid)
        .with_columns(ts=col("ts").cast("timestamp[us]"),
                      date=col("ts").cast("timestamp[us]").dt.truncate("1d").cast("date").cast("string"))
        .filter(col("date") >= "2026-11-04")
    )
    enriched = (
        events.union(late_clean.select(*events.columns))
        .with_columns(hour=col("ts").dt.hour(),
                      amount_eur=when(col("amount").is_null()).then(lit(0.0)).otherwise(col("amount") * 0.92),
                      is_bot=col("user_id") == 1)
        .map_batches(add_session_bucket)
        .drop("amount")
    )

    console.rule("Plan")
    enriched.explain()
    out = os.path.join(root, "output", "events_enriched")
    console.rule("Run")
    result = enriched.write_parquet(out, partition_by=["event_type"], mode="overwrite")
    rejected_result = rejected.write_json(os.path.join(root, "output", "rejected_late_events"), mode="overwrite")

    bot_share = sl.read_parquet(out).filter(col("is_bot")).count() / max(result.rows, 1)
    console.rule("Result")
    console.print(f"Wrote {result.rows:,} rows in {len(result.files)} files to {out}")
    console.print(f"[bold yellow]{rejected_result.rows} malformed late rows[/] were set aside, not dropped: "
                  f"{rejected_result.path}")
    console.print(f"Skew: user 1 produced {bot_share:.0%} of the events.")
    console.print("Sample:")
    sl.read_parquet(out).select("event_id", "user_id", "event_type", "hour", "page_family", "amount_eur").show(5)

    stats = enriched.stats()
    console.rule("Summary")
    console.print(stats.table())
    for line in stats.footer_lines():
        console.print(line)
    from ..config import current as current_config
    from ..observe.history import run_directory
    from ..observe.report import write_report
    report = write_report(run_directory(current_config().runs_dir, stats.run_id))
    console.print(f"Report: {report}  (`sluice report {stats.run_id} --open` opens it)")
