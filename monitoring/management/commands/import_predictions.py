"""``manage.py import_predictions FILE --model SLUG --site CODE --service NAME``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._operator import via
from monitoring import importing


class Command(BaseCommand):
    help = (
        "Send a batch model's predictions from a CSV or Parquet file through the gate (same "
        "validation and deferral rules as the API). Rejected rows go to a CSV file with "
        "error_code and error columns; re-running the same file stores nothing twice. Exits "
        "non-zero only when the import as a whole cannot run, never for rejected rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--model", required=True, help="the model's slug")
        parser.add_argument("--site", required=True, help="the site's code")
        parser.add_argument(
            "--service",
            required=True,
            help="the service account the predictions are logged as (its token scope applies)",
        )
        parser.add_argument(
            "--format", choices=importing.FORMATS, help="default: from the file's extension"
        )
        parser.add_argument(
            "--rejected",
            type=Path,
            help="where to write the rejected rows (default: FILE's name + .rejected.csv)",
        )
        parser.add_argument(
            "--chunk-rows",
            type=int,
            default=importing.CHUNK_ROWS,
            help=f"rows per gate call (default {importing.CHUNK_ROWS}, at most 10000)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not 1 <= options["chunk_rows"] <= 10_000:
            raise CommandError("--chunk-rows must be between 1 and 10000")
        rejected_path = (
            Path(options["rejected"])
            if options["rejected"]
            else path.with_name(f"{path.stem}.rejected.csv")
        )
        if rejected_path.resolve() == path.resolve():
            raise CommandError("--rejected must not be the input file")
        try:
            target = importing.target_for(
                model=options["model"], site=options["site"], service=options["service"]
            )
            source = importing.open_source(path, options["format"])
        except importing.ImportProblem as exc:
            raise CommandError(str(exc)) from exc
        try:
            layout = importing.layout_for(
                source.header, features=target.features, cohorts=target.cohorts
            )
        except importing.ImportProblem as exc:
            source.close()
            raise CommandError(str(exc)) from exc
        tally, stopped = self._run(source, target, layout, rejected_path, options)
        importing.record_import(
            target=target,
            path=path,
            fmt=source.format,
            tally=tally,
            via=via("import_predictions"),
            stopped=stopped,
        )
        self._summary(tally, rejected_path)
        if stopped:
            raise CommandError(f"stopped after {tally.rows:,} rows: {stopped}")

    def _run(
        self,
        source: importing.Source,
        target: importing.Target,
        layout: importing.Layout,
        rejected_path: Path,
        options: dict[str, Any],
    ) -> tuple[importing.Tally, str]:
        """Import every row; the tally, and why the file could not be read to its end (if)."""
        if layout.unexpected:
            self.stderr.write(
                "Columns not in the feature spec (stored as unexpected features, which defers "
                f"the row): {', '.join(layout.unexpected)}"
            )
        try:
            stream = rejected_path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            source.close()
            raise CommandError(f"cannot write {rejected_path}: {exc.strerror or exc}") from exc
        bar = None if options["no_progress"] else ProgressBar(self.stderr)
        importer = importing.Importer(
            account=target.account,
            model=target.model.slug,
            site=target.site.code,
            layout=layout,
            rejected=importing.RejectedRows(stream, source.header),
        )
        stopped = ""
        with stream:
            try:
                importer.run(source, chunk_rows=options["chunk_rows"], progress=bar)
            except importing.ImportProblem as exc:
                stopped = str(exc)  # the rows before it are stored: say so, then fail
            finally:
                source.close()
                if bar is not None:
                    bar.finish()
        return importer.tally, stopped

    def _summary(self, tally: importing.Tally, rejected_path: Path) -> None:
        out = self.stdout.write
        out(f"{tally.rows:,} rows read")
        out(f"  accepted (act)            {tally.act:>10,}")
        out(f"  deferred to a human       {tally.deferred:>10,}")
        for code, count in sorted(tally.reasons.items()):
            out(f"    {code:<24}{count:>10,}")
        out(f"  shadow (logged only)      {tally.shadow:>10,}")
        out(f"  replayed (already stored) {tally.replayed:>10,}")
        out(f"  rejected                  {tally.rejected:>10,}")
        for code, count in sorted(tally.rejections.items()):
            out(f"    {code:<24}{count:>10,}")
        if tally.rejected:
            out(f"Rejected rows (with error_code and error): {rejected_path}")
        else:
            out(f"No row was rejected ({rejected_path} has the header only).")


class ProgressBar:
    """Rows done (of the total when known), rate and time left, on stderr. Redrawn in place on
    a terminal; elsewhere (a log) one line every ``LOG_EVERY`` seconds."""

    LOG_EVERY = 10.0
    WIDTH = 24

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = float("-inf")
        self.drawn = False

    def __call__(self, progress: importing.Progress) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < self.LOG_EVERY:
            return
        self.last = now
        line = self.render(progress)
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K", ending="")
            self.stream.flush()
            self.drawn = True
        else:
            self.stream.write(line)

    def render(self, p: importing.Progress) -> str:
        rate = p.rows / p.elapsed if p.elapsed > 0 else 0.0
        if p.total_rows:
            share = p.rows / p.total_rows
            done = f"{p.rows:,}/{p.total_rows:,} rows"
        else:
            share = p.bytes_read / p.total_bytes if p.total_bytes else 1.0
            done = f"{p.rows:,} rows, {p.bytes_read / 1e6:,.1f}/{p.total_bytes / 1e6:,.1f} MB"
        share = min(share, 1.0)
        filled = round(self.WIDTH * share)
        left = (p.elapsed / share - p.elapsed) if share > 0 else 0.0
        return (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} {done}, "
            f"{rate:,.0f} rows/s, {_duration(left)} left"
        )

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("", ending="\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
