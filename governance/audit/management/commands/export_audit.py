from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.audit.exports import (
    MEDIA_TYPES,
    MODEL_OBJECT_TYPE,
    ExportFilters,
    audit_export,
    parse_bound,
)
from governance.audit.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Export the audit trail (filtered) as JSON Lines, CSV or PDF, streamed to a file, and "
        "record the export in the trail. Verify a JSON Lines export with "
        "`python3 tools/verify_audit_export.py FILE`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("output", help="file to write (an existing file is replaced)")
        parser.add_argument("--format", choices=sorted(MEDIA_TYPES), default="jsonl")
        parser.add_argument("--model", default="", help="clinical model slug, e.g. sepsis-ews")
        parser.add_argument("--since", default="", help="YYYY-MM-DD (UTC) or ISO 8601 time")
        parser.add_argument(
            "--until", default="", help="YYYY-MM-DD (that day included) or ISO 8601 time (excl.)"
        )
        parser.add_argument("--actor", default="", help="username (or user id) who acted")
        parser.add_argument(
            "--action", default="", help="action, e.g. release.sign, or a prefix: 'release.*'"
        )
        parser.add_argument(
            "--exported-by",
            default="",
            help="username recorded as the exporter (must hold audit.export_auditevent); "
            "default: system",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        filters = self._filters(options)
        actor = self._exporter(options["exported_by"])
        target = Path(options["output"])
        partial = target.with_name(target.name + ".partial")
        try:
            export = audit_export(actor=actor, filters=filters, fmt=options["format"])
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc
        try:
            with partial.open("wb") as out:
                for block in export:
                    out.write(block)
        except OSError as exc:
            export.close()  # records the export as aborted
            raise CommandError(f"cannot write {target}: {exc}") from exc
        partial.replace(target)  # a reader never sees a half-written export under the name
        manifest, event = export.manifest, export.event
        assert event is not None  # recorded when the stream ended
        self.stdout.write(
            f"wrote {target}: {manifest.rows} events, {manifest.links} hash-only links, "
            f"sha256 {manifest.file_sha256} (recorded as audit event #{event.seq})"
        )

    def _filters(self, options: dict[str, Any]) -> ExportFilters:
        model = options["model"].strip()
        registered = AuditEvent.objects.filter(object_type=MODEL_OBJECT_TYPE, payload__slug=model)
        if model and not registered.exists():
            raise CommandError(f"no model {model!r} was ever registered (no model.register event)")
        try:
            return ExportFilters(
                model=model,
                since=parse_bound(options["since"]),
                until=parse_bound(options["until"], end=True),
                actor=options["actor"].strip(),
                action=options["action"].strip(),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc

    def _exporter(self, username: str) -> Any:
        if not username:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {username!r}")
        return user
