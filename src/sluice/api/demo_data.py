"""The lake `sluice demo` runs on, and the pipeline script it runs: generated, so the demo needs no download.

The lake is what a small shop's clickstream looks like: a week of events, hive-partitioned by
date, where one user (a bot) produces a quarter of the traffic and purchases are paid in several
currencies; a users table; and a late drop of events from a partner as CSV, with the defects such
drops have (a line cut short, an unquoted comma, a user id in the wrong format). A handful of
purchases are in a currency the rate table does not know, which the pipeline's UDF rejects. Those
are the bad records the demo quarantines: each one is placed at a fixed position, so every run of
the demo finds the same ones.

The pipeline is written out as an ordinary script (`pipeline.py` in the lake), so that the demo can
run it in a child process with `sluice run` and kill it, and so that a reader can open it.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EVENT_TYPES = np.array(["view", "view", "view", "click", "click", "add_to_cart", "purchase"])
COUNTRIES = np.array(["DE", "FR", "US", "GB", "BR", "IN", "JP", "NL"])
CURRENCY_OF_COUNTRY = {"DE": "EUR", "FR": "EUR", "NL": "EUR", "US": "USD", "GB": "GBP", "BR": "BRL", "IN": "INR",
                       "JP": "JPY"}
TYPICAL_PRICE = {"EUR": 40.0, "USD": 45.0, "GBP": 35.0, "BRL": 220.0, "INR": 3500.0, "JPY": 6500.0}
PATHS = np.array(["/", "/search", "/product/42", "/product/7", "/cart", "/checkout", "/help"])
UNKNOWN_CURRENCY = "BTC"  # no rate for it: the UDF rejects these purchases
DAYS = 7
START = dt.datetime(2026, 11, 1)


def generate_lake(root: str, rows: int, seed: int = 7) -> dict[str, str]:
    """Write the demo lake under `root`; return the paths of its parts."""
    rng = np.random.default_rng(seed)
    users = max(1000, rows // 50)
    user_country = rng.integers(0, len(COUNTRIES), users)  # an index into COUNTRIES
    user_ids = rng.zipf(1.3, rows) % users  # a few users produce most of the traffic
    user_ids[rng.random(rows) < 0.25] = 1  # and user 1 is a bot holding a quarter of it
    seconds = rng.integers(0, DAYS * 86400, rows)
    events = _events(rng, np.arange(rows), user_ids, seconds, user_country)
    days = pa.array([(START.date() + dt.timedelta(days=int(d))).isoformat() for d in range(DAYS)])
    events = events.append_column("date", pc.take(days, pa.array(seconds // 86400)))
    kept = pc.equal(events["event_type"], "purchase").to_numpy(zero_copy_only=False) & (user_ids != 1) & (
        seconds >= 3 * 86400)  # purchases the pipeline's filters keep
    rejected = np.flatnonzero(kept)[3::9973][:4]
    currency = events["currency"].to_numpy(zero_copy_only=False).astype(object)
    currency[rejected] = UNKNOWN_CURRENCY
    events = events.set_column(events.schema.get_field_index("currency"), "currency", pa.array(currency, pa.string()))

    events_dir = os.path.join(root, "events")
    shutil.rmtree(events_dir, ignore_errors=True)  # an earlier demo's, perhaps with other --rows
    for day in days.to_pylist():
        part = events.filter(pc.equal(events["date"], day)).drop_columns(["date"])
        os.makedirs(os.path.join(events_dir, f"date={day}"), exist_ok=True)
        step = part.num_rows // 4 + 1
        for i, start in enumerate(range(0, part.num_rows, step)):
            pq.write_table(part.slice(start, step), os.path.join(events_dir, f"date={day}", f"part-{i}.parquet"))

    users_path = os.path.join(root, "users.parquet")
    pq.write_table(pa.table({
        "user_id": pa.array(np.arange(users, dtype=np.int64)),
        "country": pa.array(COUNTRIES[user_country]),
        "plan": pa.array(np.where(rng.random(users) < 0.1, "pro", "free")),
        "signup_date": pa.array(START.date() - dt.timedelta(days=int(d)) for d in rng.integers(1, 900, users)),
    }), users_path)

    late_path = os.path.join(root, "late", "late-events.csv")
    os.makedirs(os.path.dirname(late_path), exist_ok=True)
    _write_late_drop(rng, late_path, first_id=rows, rows=max(2000, rows // 100), users=users,
                     user_country=user_country)
    script = os.path.join(root, "pipeline.py")
    with open(script, "w") as out:
        out.write(PIPELINE)
    return {"events": events_dir, "users": users_path, "late": late_path, "script": script}


def _events(rng, event_ids, user_ids, seconds, user_country) -> pa.Table:
    rows = len(event_ids)
    event_type = EVENT_TYPES[rng.integers(0, len(EVENT_TYPES), rows)]
    codes = np.array([CURRENCY_OF_COUNTRY[c] for c in COUNTRIES], dtype=object)
    currency = codes[user_country[user_ids]]
    price = np.array([TYPICAL_PRICE[c] for c in codes])[user_country[user_ids]]
    is_purchase = event_type == "purchase"
    amount = np.where(is_purchase, np.round(rng.gamma(2.0, 0.5, rows) * price, 2), np.nan)
    return pa.table({
        "event_id": pa.array(event_ids.astype(np.int64)),
        "user_id": pa.array(user_ids.astype(np.int64)),
        "ts": pa.array((np.datetime64(START, "us") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")),
        "event_type": pa.array(event_type),
        "path": pa.array(PATHS[rng.integers(0, len(PATHS), rows)]),
        "amount": pa.array(amount, from_pandas=True),
        "currency": pa.array(np.where(is_purchase, currency, None), pa.string()),
    })


def _write_late_drop(rng, path: str, first_id: int, rows: int, users: int, user_country) -> None:
    """A partner's CSV of late events, four days of them, with three lines that do not parse."""
    seconds = rng.integers(3 * 86400, DAYS * 86400, rows)
    late = _events(rng, np.arange(first_id, first_id + rows), rng.integers(0, users, rows), seconds, user_country)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(late.column_names)
        for i, row in enumerate(late.to_pylist()):
            row["ts"] = row["ts"].isoformat()
            line = ["" if v is None else v for v in row.values()]
            if i == rows // 4:
                out.write(",".join(map(str, line[:4])) + "\n")  # cut short: 4 of 7 columns
            elif i == rows // 2:
                line[4] = "/search?q=red,shoes"
                out.write(",".join(map(str, line)) + "\n")  # an unquoted comma: 8 columns
            elif i == 3 * rows // 4:
                line[1] = f"u-{line[1]}"
                writer.writerow(line)  # a user id from another system: not an integer
            else:
                writer.writerow(line)


PIPELINE = '''\
"""The `sluice demo` pipeline: daily features per user, from a week of events and a late CSV drop.

    sluice run pipeline.py OUT     # or: sluice explain pipeline.py OUT
"""
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc

import sluice as sl
from sluice import col

LAKE = os.path.dirname(os.path.abspath(__file__))
sl.configure(max_bad_records=100)  # up to 100 bad records are set aside; one more fails the run
# This lake fits in memory many times over, where sluice would run the join, group_by and window as one Polars
# query. Planning their exchanges, as a lake bigger than memory gets them, shows each step (and gives resume
# finished exchange work to keep).
sl.configure(fuse_fraction=0)


class ToEuro:
    """Converts purchase amounts to EUR. A class: each worker process loads the rates once, as it would a model."""

    def __init__(self):
        self.rates = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "BRL": 0.17, "INR": 0.011, "JPY": 0.0061}

    def __call__(self, batch: pa.Table) -> pa.Table:
        unknown = set(pc.unique(batch["currency"]).drop_null().to_pylist()) - self.rates.keys()
        if unknown:
            raise ValueError(f"no exchange rate for {sorted(unknown)}")
        codes = pa.array(list(self.rates))
        rate = pc.take(pa.array(list(self.rates.values())), pc.index_in(batch["currency"], codes))
        return batch.append_column("amount_eur", pc.round(pc.multiply(batch["amount"], rate), 2))


events = sl.read_parquet(os.path.join(LAKE, "events"), filter=col("date") >= "2026-11-04")  # prunes 3 of 7 days
late = (
    sl.read_csv(os.path.join(LAKE, "late", "late-events.csv"))
    .with_columns(ts=col("ts").cast("timestamp[us]"),
                  date=col("ts").cast("timestamp[us]").dt.truncate("1d").cast("date").cast("string"))
    .select(*events.columns)
)
users = sl.read_parquet(os.path.join(LAKE, "users.parquet"))

features = (
    events.union(late)
    .filter(col("user_id") != 1)                                   # the bot
    .map_batches(ToEuro, concurrency=2,                            # a pool of 2 worker processes
                 schema=events.schema.append(pa.field("amount_eur", pa.float64())))  # what ToEuro returns
    .join(users, on="user_id")                                     # broadcast or shuffle: the planner decides
    .group_by("user_id", "country", "plan", "date")
    .agg(events=sl.count(), purchases=col("amount_eur").count(), spend_eur=col("amount_eur").sum(),
         last_seen=col("ts").max())
    .with_columns(running_spend_eur=col("spend_eur").cum_sum().over("user_id", order_by="date"),
                  active_day=sl.row_number().over("user_id", order_by="date"))
)


def write(out: str):
    return features.write_parquet(out, partition_by=["country"], mode="overwrite")


if __name__ == "__main__":
    print(write(sys.argv[1]))
'''
