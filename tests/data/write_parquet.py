"""Stable-suite artifacts written by the Python ecosystem, for tests/it/parquet_ecosystem.rs.

    python3 write_parquet.py codecs DIR    one artifact per pyarrow codec, and one by Polars
                                           (zstd, its default) when Polars is installed
    python3 write_parquet.py bomb DIR      the decompression bomb of issue 21: 2,000 rows whose
                                           dictionary-encoded `recipe` is one 5 MB string, and
                                           one whose `recipe` is one 900 KB string

Every artifact finished two hours ago, so an import judges it fresh.
"""

import datetime as dt
import sys

import pyarrow as pa
import pyarrow.parquet as pq

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
FINISHED = NOW - dt.timedelta(hours=2)
STARTED = FINISHED - dt.timedelta(hours=1)


def columns(job, rows, recipe):
    """The artifact's columns (docs/stable-suite-artifact.md), `rows` rows, one metric each."""
    ts = pa.timestamp("ms", tz="UTC")
    metrics = [("sps", 45000.0, "steps_per_sec"), ("reward", 0.7, "hearts")]
    name = [metrics[i][0] if i < len(metrics) else None for i in range(rows)]
    value = [metrics[i][1] if i < len(metrics) else None for i in range(rows)]
    unit = [metrics[i][2] if i < len(metrics) else None for i in range(rows)]
    return {
        "schema_version": pa.array([1] * rows, pa.int32()),
        "suite": pa.array(["stable"] * rows),
        "job": pa.array([job] * rows),
        "recipe": recipe,
        "run_id": pa.array([f"stable.eco.{job}"] * rows),
        "runner": pa.array(["skypilot"] * rows),
        "started_at": pa.array([STARTED] * rows, ts),
        "finished_at": pa.array([FINISHED] * rows, ts),
        "exit_status": pa.array(["success"] * rows),
        "exit_code": pa.array([0] * rows, pa.int64()),
        "metric_name": pa.array(name, pa.string()),
        "metric_value": pa.array(value, pa.float64()),
        "metric_unit": pa.array(unit, pa.string()),
        "acceptance_metric": pa.array(["sps"] + [None] * (rows - 1), pa.string()),
        "acceptance_condition": pa.array([">40000"] + [None] * (rows - 1), pa.string()),
    }


def codecs(out):
    for codec in ["none", "snappy", "gzip", "brotli", "lz4", "zstd"]:
        job = f"pyarrow_{codec}"
        table = pa.table(columns(job, 2, pa.array([f"{job}.recipe"] * 2)))
        pq.write_table(table, f"{out}/{job}.parquet", compression=codec)
    try:
        import polars as pl
    except ImportError:
        print("polars is not installed: no Polars artifact", file=sys.stderr)
        return
    table = pa.table(columns("polars_zstd", 2, pa.array(["polars.recipe"] * 2)))
    pl.from_arrow(table).write_parquet(f"{out}/polars_zstd.parquet")


def bomb(out):
    # bomb.parquet: the dictionary page alone is over its limit. wide.parquet: a 900 KB
    # dictionary page is within it, but 2,000 rows of it decode to 1.8 GB.
    for name, size in [("bomb", 5 * 1024 * 1024), ("wide", 900 * 1024)]:
        rows = 2000
        big = pa.array(["x" * size])
        recipe = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), big)
        table = pa.table(columns(name, rows, recipe))
        pq.write_table(
            table,
            f"{out}/{name}.parquet",
            compression="snappy",
            dictionary_pagesize_limit=64 * 1024 * 1024,
        )


if __name__ == "__main__":
    {"codecs": codecs, "bomb": bomb}[sys.argv[1]](sys.argv[2])
