"""The 22 TPC-H queries with the Dask DataFrame API (``dask.dataframe``, dask-expr).

Used by ``bench/engines/dask.py``.  ``load_tables(data_dir)`` gives lazy frames over
the Parquet directories (dask-expr pushes column projections into the scan);
``qNN(tables)`` returns the small final result as a pandas DataFrame whose columns are
those of ``sql/qNN.sql`` in name and order, rows in the query's ORDER BY order, LIMIT
applied.  Parameters are the spec's validation values, as in the SQL text.

Conventions, the same rewrites ``queries.py`` (sluice) uses where Dask lacks the
operator:

- Money and quantity columns (decimal128(15, 2) in the files) are cast to float64 at
  the scan: pandas/Dask have no decimal arithmetic, and float64 is what a Dask user
  computes with.  Decimal constants are therefore written as the exact bound they
  stand for (Q6 ``0.06 +- 0.01`` -> 0.05 .. 0.07; in float ``0.06 - 0.01`` would be
  0.049999..., and ``0.06 + 0.01`` 0.069999..., dropping the 0.07 rows).
- Dates stay ``date32[pyarrow]`` and are compared with ``datetime.date``.
- No semi/anti join in Dask: EXISTS / IN (subquery) -> inner merge with the distinct
  keys (Q4, Q18, Q20, Q21); NOT EXISTS / NOT IN -> left merge with the distinct keys,
  keeping rows without a match (Q16, Q22).
- Correlated scalar subqueries -> group_by on the correlation keys merged back (Q2,
  Q17, Q20); uncorrelated ones -> lazy Dask scalars (Q11, Q15, Q22).
- Q21: "another supplier on the order" <=> the order has > 1 distinct suppliers; "no
  other supplier was late" <=> the order's late lines have exactly 1 distinct supplier.
- Group keys functionally dependent on another key are grouped by that key only and
  joined back after the aggregation (Q10: customer columns by c_custkey).
- The final ORDER BY / LIMIT runs in pandas on the computed (small) result, as a Dask
  user would do: ``compute()`` then ``sort_values``/``head``.
- LIKE: '%x%' / 'x%' / '%x' -> ``str.contains(regex=False)`` / ``startswith`` /
  ``endswith``; '%a%b%' -> the regex ``a.*b``.
"""
from __future__ import annotations

import datetime

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa

TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")

D = datetime.date


def load_tables(data_dir) -> dict:
    tables = {}
    for t in TABLES:
        df = dd.read_parquet(f"{data_dir}/{t}/")
        money = {c: "float64" for c, dt in df.dtypes.items()
                 if isinstance(getattr(dt, "pyarrow_dtype", None), pa.Decimal128Type)}
        tables[t] = df.astype(money) if money else df
    return tables


def _sorted(df, by, ascending=True, limit=None):
    out = df.sort_values(by, ascending=ascending, kind="stable").reset_index(drop=True)
    return out.head(limit) if limit else out


def _distinct(df, cols):
    return df[cols].drop_duplicates()


# ------------------------------------------------------------------------------- queries


def q01(t):
    li = t["lineitem"]
    li = li[li.l_shipdate <= D(1998, 9, 2)]   # date '1998-12-01' - interval '90' day
    li = li.assign(disc_price=li.l_extendedprice * (1 - li.l_discount))
    li = li.assign(charge=li.disc_price * (1 + li.l_tax))
    g = li.groupby(["l_returnflag", "l_linestatus"]).agg(
        sum_qty=("l_quantity", "sum"),
        sum_base_price=("l_extendedprice", "sum"),
        sum_disc_price=("disc_price", "sum"),
        sum_charge=("charge", "sum"),
        avg_qty=("l_quantity", "mean"),
        avg_price=("l_extendedprice", "mean"),
        avg_disc=("l_discount", "mean"),
        count_order=("l_orderkey", "count"),
    ).reset_index()
    return _sorted(g.compute(), ["l_returnflag", "l_linestatus"])


def q02(t):
    region = t["region"][t["region"].r_name == "EUROPE"]
    nation = t["nation"].merge(region, left_on="n_regionkey", right_on="r_regionkey")
    supplier = t["supplier"].merge(nation[["n_nationkey", "n_name"]],
                                   left_on="s_nationkey", right_on="n_nationkey")
    part = t["part"]
    part = part[(part.p_size == 15) & part.p_type.str.endswith("BRASS")]
    ps = t["partsupp"].merge(supplier, left_on="ps_suppkey", right_on="s_suppkey")
    # every European offer for the qualifying parts: exactly the correlated subquery's rows
    j = ps.merge(part[["p_partkey", "p_mfgr"]], left_on="ps_partkey", right_on="p_partkey")
    best = j.groupby("ps_partkey").ps_supplycost.min().reset_index() \
        .rename(columns={"ps_supplycost": "min_cost"})
    j = j.merge(best, on="ps_partkey")
    j = j[j.ps_supplycost == j.min_cost]
    cols = ["s_acctbal", "s_name", "n_name", "p_partkey", "p_mfgr", "s_address", "s_phone",
            "s_comment"]
    return _sorted(j[cols].compute(), ["s_acctbal", "n_name", "s_name", "p_partkey"],
                   [False, True, True, True], 100)


def q03(t):
    c = t["customer"]
    c = c[c.c_mktsegment == "BUILDING"][["c_custkey"]]
    o = t["orders"]
    o = o[o.o_orderdate < D(1995, 3, 15)][["o_orderkey", "o_custkey", "o_orderdate",
                                             "o_shippriority"]]
    li = t["lineitem"]
    li = li[li.l_shipdate > D(1995, 3, 15)]
    li = li.assign(revenue=li.l_extendedprice * (1 - li.l_discount))[["l_orderkey", "revenue"]]
    j = c.merge(o, left_on="c_custkey", right_on="o_custkey") \
        .merge(li, left_on="o_orderkey", right_on="l_orderkey")
    g = j.groupby(["l_orderkey", "o_orderdate", "o_shippriority"]).revenue.sum().reset_index()
    out = _sorted(g.compute(), ["revenue", "o_orderdate"], [False, True], 10)
    return out[["l_orderkey", "revenue", "o_orderdate", "o_shippriority"]]


def q04(t):
    o = t["orders"]
    o = o[(o.o_orderdate >= D(1993, 7, 1)) & (o.o_orderdate < D(1993, 10, 1))]
    li = t["lineitem"]
    late = _distinct(li[li.l_commitdate < li.l_receiptdate], ["l_orderkey"])
    j = o[["o_orderkey", "o_orderpriority"]].merge(late, left_on="o_orderkey",
                                                   right_on="l_orderkey")
    g = j.groupby("o_orderpriority").o_orderkey.count().reset_index() \
        .rename(columns={"o_orderkey": "order_count"})
    return _sorted(g.compute(), ["o_orderpriority"])


def q05(t):
    region = t["region"][t["region"].r_name == "ASIA"]
    nation = t["nation"].merge(region, left_on="n_regionkey", right_on="r_regionkey")
    c = t["customer"].merge(nation[["n_nationkey", "n_name"]],
                            left_on="c_nationkey", right_on="n_nationkey")
    o = t["orders"]
    o = o[(o.o_orderdate >= D(1994, 1, 1)) & (o.o_orderdate < D(1995, 1, 1))]
    j = c[["c_custkey", "c_nationkey", "n_name"]] \
        .merge(o[["o_orderkey", "o_custkey"]], left_on="c_custkey", right_on="o_custkey") \
        .merge(t["lineitem"][["l_orderkey", "l_suppkey", "l_extendedprice", "l_discount"]],
               left_on="o_orderkey", right_on="l_orderkey") \
        .merge(t["supplier"][["s_suppkey", "s_nationkey"]],
               left_on=["l_suppkey", "c_nationkey"], right_on=["s_suppkey", "s_nationkey"])
    j = j.assign(revenue=j.l_extendedprice * (1 - j.l_discount))
    g = j.groupby("n_name").revenue.sum().reset_index()
    return _sorted(g.compute(), ["revenue"], [False])


def q06(t):
    li = t["lineitem"]
    li = li[(li.l_shipdate >= D(1994, 1, 1)) & (li.l_shipdate < D(1995, 1, 1))
            & (li.l_discount >= 0.05) & (li.l_discount <= 0.07) & (li.l_quantity < 24)]
    revenue = (li.l_extendedprice * li.l_discount).sum().compute()
    return pd.DataFrame({"revenue": [revenue]})


def q07(t):
    n = t["nation"]
    n = n[n.n_name.isin(["FRANCE", "GERMANY"])][["n_nationkey", "n_name"]]
    s = t["supplier"].merge(n, left_on="s_nationkey", right_on="n_nationkey")[
        ["s_suppkey", "n_name"]].rename(columns={"n_name": "supp_nation"})
    c = t["customer"].merge(n, left_on="c_nationkey", right_on="n_nationkey")[
        ["c_custkey", "n_name"]].rename(columns={"n_name": "cust_nation"})
    li = t["lineitem"]
    li = li[(li.l_shipdate >= D(1995, 1, 1)) & (li.l_shipdate <= D(1996, 12, 31))]
    j = li[["l_orderkey", "l_suppkey", "l_shipdate", "l_extendedprice", "l_discount"]] \
        .merge(s, left_on="l_suppkey", right_on="s_suppkey") \
        .merge(t["orders"][["o_orderkey", "o_custkey"]], left_on="l_orderkey",
               right_on="o_orderkey") \
        .merge(c, left_on="o_custkey", right_on="c_custkey")
    j = j[j.supp_nation != j.cust_nation]   # {FRANCE, GERMANY} pairs in either direction
    j = j.assign(l_year=j.l_shipdate.dt.year, volume=j.l_extendedprice * (1 - j.l_discount))
    g = j.groupby(["supp_nation", "cust_nation", "l_year"]).volume.sum().reset_index() \
        .rename(columns={"volume": "revenue"})
    return _sorted(g.compute(), ["supp_nation", "cust_nation", "l_year"])


def q08(t):
    region = t["region"][t["region"].r_name == "AMERICA"]
    n1 = t["nation"].merge(region, left_on="n_regionkey", right_on="r_regionkey")[["n_nationkey"]]
    c = t["customer"].merge(n1, left_on="c_nationkey", right_on="n_nationkey")[["c_custkey"]]
    o = t["orders"]
    o = o[(o.o_orderdate >= D(1995, 1, 1)) & (o.o_orderdate <= D(1996, 12, 31))][
        ["o_orderkey", "o_custkey", "o_orderdate"]]
    p = t["part"]
    p = p[p.p_type == "ECONOMY ANODIZED STEEL"][["p_partkey"]]
    s = t["supplier"].merge(t["nation"][["n_nationkey", "n_name"]], left_on="s_nationkey",
                            right_on="n_nationkey")[["s_suppkey", "n_name"]]
    j = t["lineitem"][["l_orderkey", "l_partkey", "l_suppkey", "l_extendedprice", "l_discount"]] \
        .merge(p, left_on="l_partkey", right_on="p_partkey") \
        .merge(o, left_on="l_orderkey", right_on="o_orderkey") \
        .merge(c, left_on="o_custkey", right_on="c_custkey") \
        .merge(s, left_on="l_suppkey", right_on="s_suppkey")
    volume = j.l_extendedprice * (1 - j.l_discount)
    j = j.assign(o_year=j.o_orderdate.dt.year, volume=volume,
                 brazil=volume.where(j.n_name == "BRAZIL", 0.0))
    g = j.groupby("o_year").agg(brazil=("brazil", "sum"), volume=("volume", "sum")).compute()
    g = g.reset_index()
    g["mkt_share"] = g.brazil / g.volume
    return _sorted(g[["o_year", "mkt_share"]], ["o_year"])


def q09(t):
    p = t["part"]
    p = p[p.p_name.str.contains("green", regex=False)][["p_partkey"]]
    j = t["lineitem"][["l_orderkey", "l_partkey", "l_suppkey", "l_quantity", "l_extendedprice",
                       "l_discount"]] \
        .merge(p, left_on="l_partkey", right_on="p_partkey") \
        .merge(t["partsupp"][["ps_partkey", "ps_suppkey", "ps_supplycost"]],
               left_on=["l_partkey", "l_suppkey"], right_on=["ps_partkey", "ps_suppkey"]) \
        .merge(t["supplier"][["s_suppkey", "s_nationkey"]], left_on="l_suppkey",
               right_on="s_suppkey") \
        .merge(t["nation"][["n_nationkey", "n_name"]], left_on="s_nationkey",
               right_on="n_nationkey") \
        .merge(t["orders"][["o_orderkey", "o_orderdate"]], left_on="l_orderkey",
               right_on="o_orderkey")
    j = j.assign(nation=j.n_name, o_year=j.o_orderdate.dt.year,
                 amount=j.l_extendedprice * (1 - j.l_discount) - j.ps_supplycost * j.l_quantity)
    g = j.groupby(["nation", "o_year"]).amount.sum().reset_index() \
        .rename(columns={"amount": "sum_profit"})
    return _sorted(g.compute(), ["nation", "o_year"], [True, False])


def q10(t):
    o = t["orders"]
    o = o[(o.o_orderdate >= D(1993, 10, 1)) & (o.o_orderdate < D(1994, 1, 1))][
        ["o_orderkey", "o_custkey"]]
    li = t["lineitem"]
    li = li[li.l_returnflag == "R"]
    j = o.merge(li[["l_orderkey", "l_extendedprice", "l_discount"]], left_on="o_orderkey",
                right_on="l_orderkey")
    j = j.assign(revenue=j.l_extendedprice * (1 - j.l_discount))
    top = _sorted(j.groupby("o_custkey").revenue.sum().reset_index().compute(),
                  ["revenue"], [False], 20)
    c = t["customer"].merge(t["nation"][["n_nationkey", "n_name"]], left_on="c_nationkey",
                            right_on="n_nationkey")
    out = c.merge(top, left_on="c_custkey", right_on="o_custkey").compute()
    out = _sorted(out, ["revenue"], [False])
    return out[["c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone",
                "c_comment"]]


def q11(t):
    n = t["nation"]
    n = n[n.n_name == "GERMANY"][["n_nationkey"]]
    s = t["supplier"].merge(n, left_on="s_nationkey", right_on="n_nationkey")[["s_suppkey"]]
    ps = t["partsupp"].merge(s, left_on="ps_suppkey", right_on="s_suppkey")
    ps = ps.assign(value=ps.ps_supplycost * ps.ps_availqty)
    g = ps.groupby("ps_partkey").value.sum().reset_index()
    g = g[g.value > ps.value.sum() * 0.0001]
    return _sorted(g.compute(), ["value"], [False])


def q12(t):
    li = t["lineitem"]
    li = li[li.l_shipmode.isin(["MAIL", "SHIP"])
            & (li.l_commitdate < li.l_receiptdate) & (li.l_shipdate < li.l_commitdate)
            & (li.l_receiptdate >= D(1994, 1, 1)) & (li.l_receiptdate < D(1995, 1, 1))]
    j = li[["l_orderkey", "l_shipmode"]].merge(t["orders"][["o_orderkey", "o_orderpriority"]],
                                               left_on="l_orderkey", right_on="o_orderkey")
    high = j.o_orderpriority.isin(["1-URGENT", "2-HIGH"])
    j = j.assign(high_line_count=high.astype("int64"), low_line_count=(~high).astype("int64"))
    g = j.groupby("l_shipmode")[["high_line_count", "low_line_count"]].sum().reset_index()
    return _sorted(g.compute(), ["l_shipmode"])


def q13(t):
    o = t["orders"]
    o = o[~o.o_comment.str.contains("special.*requests", regex=True)][["o_orderkey", "o_custkey"]]
    j = t["customer"][["c_custkey"]].merge(o, left_on="c_custkey", right_on="o_custkey",
                                           how="left")
    c_count = j.groupby("c_custkey").o_orderkey.count().reset_index() \
        .rename(columns={"o_orderkey": "c_count"})
    g = c_count.groupby("c_count").c_custkey.count().reset_index() \
        .rename(columns={"c_custkey": "custdist"})
    return _sorted(g.compute(), ["custdist", "c_count"], [False, False])


def q14(t):
    li = t["lineitem"]
    li = li[(li.l_shipdate >= D(1995, 9, 1)) & (li.l_shipdate < D(1995, 10, 1))]
    j = li.merge(t["part"][["p_partkey", "p_type"]], left_on="l_partkey", right_on="p_partkey")
    rev = j.l_extendedprice * (1 - j.l_discount)
    promo = rev.where(j.p_type.str.startswith("PROMO"), 0.0)
    promo_sum, total = dask.compute(promo.sum(), rev.sum())
    return pd.DataFrame({"promo_revenue": [100.0 * promo_sum / total]})


def q15(t):
    li = t["lineitem"]
    li = li[(li.l_shipdate >= D(1996, 1, 1)) & (li.l_shipdate < D(1996, 4, 1))]
    li = li.assign(total_revenue=li.l_extendedprice * (1 - li.l_discount))
    rev = li.groupby("l_suppkey").total_revenue.sum().reset_index() \
        .rename(columns={"l_suppkey": "supplier_no"})
    top = rev[rev.total_revenue == rev.total_revenue.max()]
    j = t["supplier"].merge(top, left_on="s_suppkey", right_on="supplier_no")
    out = j[["s_suppkey", "s_name", "s_address", "s_phone", "total_revenue"]].compute()
    return _sorted(out, ["s_suppkey"])


def q16(t):
    p = t["part"]
    p = p[(p.p_brand != "Brand#45") & ~p.p_type.str.startswith("MEDIUM POLISHED")
          & p.p_size.isin([49, 14, 23, 45, 19, 3, 36, 9])][["p_partkey", "p_brand", "p_type",
                                                             "p_size"]]
    s = t["supplier"]
    bad = _distinct(s[s.s_comment.str.contains("Customer.*Complaints", regex=True)],
                    ["s_suppkey"])
    ps = t["partsupp"][["ps_partkey", "ps_suppkey"]].merge(
        bad, left_on="ps_suppkey", right_on="s_suppkey", how="left")
    ps = ps[ps.s_suppkey.isna()]     # NOT IN: s_suppkey is never null
    j = ps.merge(p, left_on="ps_partkey", right_on="p_partkey")
    g = j.groupby(["p_brand", "p_type", "p_size"]).ps_suppkey.nunique().reset_index() \
        .rename(columns={"ps_suppkey": "supplier_cnt"})
    return _sorted(g.compute(), ["supplier_cnt", "p_brand", "p_type", "p_size"],
                   [False, True, True, True])


def q17(t):
    p = t["part"]
    p = p[(p.p_brand == "Brand#23") & (p.p_container == "MED BOX")][["p_partkey"]]
    li = t["lineitem"][["l_partkey", "l_quantity", "l_extendedprice"]] \
        .merge(p, left_on="l_partkey", right_on="p_partkey")
    limit = li.groupby("l_partkey").l_quantity.mean().reset_index() \
        .rename(columns={"l_quantity": "avg_qty"})
    j = li.merge(limit, on="l_partkey")
    j = j[j.l_quantity < 0.2 * j.avg_qty]
    total = j.l_extendedprice.sum().compute()
    return pd.DataFrame({"avg_yearly": [total / 7.0]})


def q18(t):
    li = t["lineitem"]
    qty = li.groupby("l_orderkey").l_quantity.sum().reset_index() \
        .rename(columns={"l_quantity": "sum_qty"})
    big = qty[qty.sum_qty > 300]
    j = t["orders"][["o_orderkey", "o_custkey", "o_orderdate", "o_totalprice"]] \
        .merge(big, left_on="o_orderkey", right_on="l_orderkey") \
        .merge(t["customer"][["c_custkey", "c_name"]], left_on="o_custkey", right_on="c_custkey")
    out = j[["c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice", "sum_qty"]]
    return _sorted(out.compute(), ["o_totalprice", "o_orderdate"], [False, True], 100)


def q19(t):
    li = t["lineitem"]
    li = li[li.l_shipmode.isin(["AIR", "AIR REG"]) & (li.l_shipinstruct == "DELIVER IN PERSON")]
    j = li[["l_partkey", "l_quantity", "l_extendedprice", "l_discount"]].merge(
        t["part"][["p_partkey", "p_brand", "p_container", "p_size"]],
        left_on="l_partkey", right_on="p_partkey")
    q, size = j.l_quantity, j.p_size
    keep = (
        ((j.p_brand == "Brand#12") & j.p_container.isin(["SM CASE", "SM BOX", "SM PACK", "SM PKG"])
         & (q >= 1) & (q <= 11) & (size >= 1) & (size <= 5))
        | ((j.p_brand == "Brand#23")
           & j.p_container.isin(["MED BAG", "MED BOX", "MED PKG", "MED PACK"])
           & (q >= 10) & (q <= 20) & (size >= 1) & (size <= 10))
        | ((j.p_brand == "Brand#34") & j.p_container.isin(["LG CASE", "LG BOX", "LG PACK", "LG PKG"])
           & (q >= 20) & (q <= 30) & (size >= 1) & (size <= 15))
    )
    j = j[keep]
    revenue = (j.l_extendedprice * (1 - j.l_discount)).sum().compute()
    return pd.DataFrame({"revenue": [revenue]})


def q20(t):
    p = t["part"]
    p = p[p.p_name.str.startswith("forest")][["p_partkey"]]
    li = t["lineitem"]
    li = li[(li.l_shipdate >= D(1994, 1, 1)) & (li.l_shipdate < D(1995, 1, 1))]
    shipped = li.groupby(["l_partkey", "l_suppkey"]).l_quantity.sum().reset_index() \
        .rename(columns={"l_quantity": "sum_qty"})
    ps = t["partsupp"][["ps_partkey", "ps_suppkey", "ps_availqty"]] \
        .merge(p, left_on="ps_partkey", right_on="p_partkey")
    # inner: a (part, supplier) with no shipments makes the SQL comparison NULL, i.e. false
    ps = ps.merge(shipped, left_on=["ps_partkey", "ps_suppkey"],
                  right_on=["l_partkey", "l_suppkey"])
    ps = ps[ps.ps_availqty > 0.5 * ps.sum_qty]
    n = t["nation"]
    n = n[n.n_name == "CANADA"][["n_nationkey"]]
    s = t["supplier"].merge(n, left_on="s_nationkey", right_on="n_nationkey") \
        .merge(_distinct(ps, ["ps_suppkey"]), left_on="s_suppkey", right_on="ps_suppkey")
    return _sorted(s[["s_name", "s_address"]].compute(), ["s_name"])


def q21(t):
    li = t["lineitem"][["l_orderkey", "l_suppkey", "l_receiptdate", "l_commitdate"]]
    late = li[li.l_receiptdate > li.l_commitdate][["l_orderkey", "l_suppkey"]]
    nsupp = li.groupby("l_orderkey").l_suppkey.nunique().reset_index()
    multi = nsupp[nsupp.l_suppkey > 1][["l_orderkey"]]
    nlate = late.groupby("l_orderkey").l_suppkey.nunique().reset_index()
    only_one_late = nlate[nlate.l_suppkey == 1][["l_orderkey"]]
    n = t["nation"]
    n = n[n.n_name == "SAUDI ARABIA"][["n_nationkey"]]
    s = t["supplier"].merge(n, left_on="s_nationkey", right_on="n_nationkey")[["s_suppkey",
                                                                               "s_name"]]
    o = t["orders"]
    o = o[o.o_orderstatus == "F"][["o_orderkey"]]
    j = late.merge(s, left_on="l_suppkey", right_on="s_suppkey") \
        .merge(o, left_on="l_orderkey", right_on="o_orderkey") \
        .merge(multi, on="l_orderkey") \
        .merge(only_one_late, on="l_orderkey")
    g = j.groupby("s_name").l_orderkey.count().reset_index() \
        .rename(columns={"l_orderkey": "numwait"})
    return _sorted(g.compute(), ["numwait", "s_name"], [False, True], 100)


def q22(t):
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    c = t["customer"][["c_custkey", "c_phone", "c_acctbal"]]
    c = c.assign(cntrycode=c.c_phone.str.slice(0, 2))
    c = c[c.cntrycode.isin(codes)]
    avg = c[c.c_acctbal > 0.0].c_acctbal.mean()
    c = c[c.c_acctbal > avg]
    has_orders = _distinct(t["orders"], ["o_custkey"])
    c = c.merge(has_orders, left_on="c_custkey", right_on="o_custkey", how="left")
    c = c[c.o_custkey.isna()]        # NOT EXISTS
    g = c.groupby("cntrycode").agg(numcust=("c_custkey", "count"),
                                   totacctbal=("c_acctbal", "sum")).reset_index()
    return _sorted(g.compute(), ["cntrycode"])


QUERIES = {f"q{i:02d}": globals()[f"q{i:02d}"] for i in range(1, 23)}
