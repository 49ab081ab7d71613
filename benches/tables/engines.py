"""polars and DataFusion on the files `cargo bench --bench tables -- gen` wrote: the same
four queries as benches/tables/main.rs, from Parquet or from memory (read first, outside
the timing). Prints `QUERY SOURCE MILLISECONDS ROWS` like the Rust side.

python engines.py ENGINE DIR QUERY SOURCE    (ENGINE: polars, datafusion)
"""
import datetime
import glob
import os
import sys
import time


def files(d, table):
    return sorted(glob.glob(os.path.join(d, table, "*.parquet")))


def run_polars(d, query, source):
    import polars as pl

    def frame(table):
        if source == "memory":
            return pl.read_parquet(files(d, table)).lazy()
        return pl.scan_parquet(files(d, table))

    li = frame("lineitem")
    od = frame("orders") if query == "join" else None
    c = pl.col
    if query == "q1":
        q = (
            li.filter(c("l_shipdate") <= datetime.date(1998, 9, 2))
            .with_columns(disc_price=c("l_extendedprice") * (1 - c("l_discount")))
            .with_columns(charge=c("disc_price") * (1 + c("l_tax")))
            .group_by("l_returnflag", "l_linestatus")
            .agg(
                c("l_quantity").sum(), c("l_extendedprice").sum().alias("p"),
                c("disc_price").sum(), c("charge").sum(),
                c("l_quantity").mean().alias("aq"), c("l_extendedprice").mean().alias("ap"),
                c("l_discount").mean(), c("l_orderkey").count(),
            )
            .sort("l_returnflag", "l_linestatus")
        )
    elif query == "q6":
        q = li.filter(
            (c("l_shipdate") >= datetime.date(1994, 1, 1))
            & (c("l_shipdate") < datetime.date(1995, 1, 1))
            & (c("l_discount") >= 0.05) & (c("l_discount") <= 0.07)
            & (c("l_quantity") < 24)
        ).select((c("l_extendedprice") * c("l_discount")).sum())
    elif query == "groupby":
        q = li.group_by("l_orderkey").agg(c("l_quantity").sum(), c("l_orderkey").count().alias("n"))
    elif query == "join":
        q = (
            li.join(od, left_on="l_orderkey", right_on="o_orderkey")
            .with_columns(revenue=c("l_extendedprice") * (1 - c("l_discount")))
            .group_by("o_orderpriority")
            .agg(c("revenue").sum(), c("l_orderkey").count())
        )
    else:
        raise SystemExit(f"unknown query {query}")
    start = time.perf_counter()
    rows = q.collect().height
    return (time.perf_counter() - start) * 1e3, rows


def run_datafusion(d, query, source):
    import datafusion
    import pyarrow.parquet as pq

    ctx = datafusion.SessionContext(
        datafusion.SessionConfig().with_target_partitions(int(os.environ.get("THREADS", "2")))
    )
    for table in ("lineitem", "orders") if query == "join" else ("lineitem",):
        if source == "memory":
            batches = [pq.read_table(f).to_batches() for f in files(d, table)]
            ctx.register_record_batches(table, [b for b in batches if b])
        else:
            ctx.register_parquet(table, os.path.join(d, table))
    sql = {
        "q1": """select l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice),
                 sum(l_extendedprice * (1 - l_discount)),
                 sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)),
                 avg(l_quantity), avg(l_extendedprice), avg(l_discount), count(l_orderkey)
                 from lineitem where l_shipdate <= date '1998-09-02'
                 group by l_returnflag, l_linestatus order by l_returnflag, l_linestatus""",
        "q6": """select sum(l_extendedprice * l_discount) from lineitem
                 where l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01'
                 and l_discount >= 0.05 and l_discount <= 0.07 and l_quantity < 24""",
        "groupby": """select l_orderkey, sum(l_quantity), count(l_orderkey) from lineitem
                      group by l_orderkey""",
        "join": """select o_orderpriority, sum(l_extendedprice * (1 - l_discount)), count(l_orderkey)
                   from lineitem join orders on l_orderkey = o_orderkey group by o_orderpriority""",
    }[query]
    start = time.perf_counter()
    rows = sum(b.num_rows for b in ctx.sql(sql).collect())
    return (time.perf_counter() - start) * 1e3, rows


if __name__ == "__main__":
    engine, d, query, source = sys.argv[1:5]
    ms, rows = {"polars": run_polars, "datafusion": run_datafusion}[engine](d, query, source)
    print(f"{query} {source} {ms:.1f} {rows}")
