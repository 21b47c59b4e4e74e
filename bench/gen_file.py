"""Write a batch model's prediction file for the import benchmark (CSV, or Parquet).

    .venv/bin/python -m bench.gen_file /tmp/vigil-bench/preds-1m.csv --rows 1000000

No ``event_id`` column: the importer derives ids from case_key + occurred_at, as a batch model's
export would need. Rows are ``bench.world.prediction(i)`` flattened (about 1 in 5 deferred, 3%
with an out-of-range heart rate). Never write these files into the repository.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import world

COLUMNS = [
    "occurred_at",
    "case_key",
    "score",
    "confidence",
    *[f["name"] for f in world.FEATURES],
    *[c["name"] for c in world.COHORTS],
]


def flat_rows(count: int, *, run: str) -> Iterator[dict[str, Any]]:
    for index in range(count):
        body = world.prediction(index, run=run)
        row = {name: body[name] for name in ("occurred_at", "case_key", "score", "confidence")}
        row.update(body["features"])
        row.update(body["cohort"])
        yield row


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def write_csv(path: Path, count: int, *, run: str) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for row in flat_rows(count, run=run):
            writer.writerow([_csv_cell(row.get(name)) for name in COLUMNS])


def write_parquet(path: Path, count: int, *, run: str, batch: int = 50_000) -> None:
    from datetime import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    rows = flat_rows(count, run=run)
    try:
        while True:
            chunk = [row for _, row in zip(range(batch), rows, strict=False)]
            if not chunk:
                break
            for row in chunk:
                row["occurred_at"] = datetime.fromisoformat(row["occurred_at"])
            table = pa.Table.from_pylist([{n: r.get(n) for n in COLUMNS} for r in chunk])
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--run", default="file", help="varies case keys and times between runs")
    args = parser.parse_args()
    if not 1 <= args.rows <= 10_000_000:
        parser.error("--rows must be between 1 and 10,000,000")
    args.path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.path.suffix == ".parquet":
        write_parquet(args.path, args.rows, run=args.run)
    else:
        write_csv(args.path, args.rows, run=args.run)
    size = args.path.stat().st_size / 1e6
    print(
        f"wrote {args.rows:,} rows, {size:,.1f} MB to {args.path} "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
