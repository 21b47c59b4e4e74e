"""The human-readable audit export: a PDF of the filters, a table of events and the manifest.

Drawn with reportlab's canvas page by page (no platypus story held in memory), into a spooled
temporary file that moves to disk past a few megabytes, then streamed out in blocks. A PDF
cannot hold its own sha256, so the page after the table carries the rest of the manifest and
the file's sha256 is recorded in the ``audit.export`` event. The table lists at most
``PDF_MAX_ROWS`` events (a PDF of a million rows helps nobody); the manifest still counts
every event inside the filter, and the PDF says where to get the rest (CSV or JSON Lines).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from governance.audit import chain
from governance.audit.exports import BLOCK_BYTES, CHUNK_SIZE, ExportPlan, Manifest

PDF_MAX_ROWS = 5000
PAGE = landscape(A4)
MARGIN = 36.0
ROW_HEIGHT = 11.0
FONT_SIZE = 7.5
#: (heading, width in points); the summary takes what is left.
COLUMNS = (("#", 40.0), ("Time (UTC)", 92.0), ("Actor", 80.0), ("Role", 110.0),
           ("Action", 120.0))  # fmt: skip
_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),  # Debian: arrows, accents
    Path(pdfmetrics.__file__).resolve().parent.parent / "fonts" / "Vera.ttf",  # ships with it
)


def _font() -> str:
    if "VigilSans" in pdfmetrics.getRegisteredFontNames():
        return "VigilSans"
    for path in _FONT_CANDIDATES:
        if path.is_file():
            pdfmetrics.registerFont(TTFont("VigilSans", str(path)))
            return "VigilSans"
    return "Helvetica"


def _fit(text: str, width: float, font: str) -> str:
    """``text`` cut to ``width`` points, with an ellipsis when cut."""
    if pdfmetrics.stringWidth(text, font, FONT_SIZE) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, FONT_SIZE) > width:
        text = text[: max(len(text) - 8, 0)] if len(text) > 40 else text[:-1]
    return text + "…"


class _Sheet:
    """The canvas plus a cursor: new pages (with their running head) as rows need them."""

    def __init__(self, out: IO[bytes], plan: ExportPlan, actor_label: str) -> None:
        self.font = _font()
        self.canvas = Canvas(out, pagesize=PAGE, pageCompression=1)
        self.canvas.setTitle("Vigil audit trail export")
        self.canvas.setAuthor(actor_label)
        self.canvas.setCreator("Vigil")
        self.running_head = f"Vigil audit trail export · {plan.filters.describe()}"
        self.page = 1
        self.y = PAGE[1] - MARGIN
        self._head()

    def _head(self) -> None:
        self.canvas.setFont(self.font, 7)
        self.canvas.drawString(MARGIN, MARGIN / 2, _fit(self.running_head, 600, self.font))
        self.canvas.drawRightString(PAGE[0] - MARGIN, MARGIN / 2, f"page {self.page}")

    def need(self, height: float) -> None:
        if self.y - height < MARGIN:
            self.canvas.showPage()
            self.page += 1
            self.y = PAGE[1] - MARGIN
            self._head()

    def text(self, line: str, *, size: float = 9, gap: float = 13) -> None:
        self.need(gap)
        self.canvas.setFont(self.font, size)
        self.canvas.drawString(MARGIN, self.y - size, line)
        self.y -= gap

    def row(self, cells: list[str]) -> None:
        self.need(ROW_HEIGHT)
        self.canvas.setFont(self.font, FONT_SIZE)
        x = MARGIN
        summary_width = PAGE[0] - 2 * MARGIN - sum(w for _, w in COLUMNS)
        widths = [w for _, w in COLUMNS] + [summary_width]
        for cell, width in zip(cells, widths, strict=True):
            self.canvas.drawString(x, self.y - FONT_SIZE, _fit(cell, width - 4, self.font))
            x += width
        self.y -= ROW_HEIGHT


def _front_matter(sheet: _Sheet, plan: ExportPlan, actor_label: str) -> None:
    sheet.text("Vigil — audit trail export", size=16, gap=24)
    sheet.text(f"Generated {chain.canonical_time(plan.generated_at)} by {actor_label}")
    for key, value in plan.filters.as_dict().items():
        sheet.text(f"Filter {key}: {value or 'any'}")
    sheet.text(f"Chain head at export: #{plan.head_seq} {plan.head_hash}")
    sheet.text(
        "The verifiable form of this export is JSON Lines: "
        "python3 tools/verify_audit_export.py FILE.jsonl",
        gap=20,
    )


def _table(sheet: _Sheet, plan: ExportPlan, manifest: Manifest) -> None:
    headings = [name for name, _ in COLUMNS] + ["Summary"]
    sheet.row(headings)
    for event in plan.matching().iterator(chunk_size=CHUNK_SIZE):
        manifest.count_event(event)
        if manifest.rows > PDF_MAX_ROWS:
            continue  # counted for the manifest, not drawn
        if sheet.y - ROW_HEIGHT < MARGIN:
            sheet.need(ROW_HEIGHT)
            sheet.row(headings)
        sheet.row([
            str(event.seq),
            event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            event.actor_label,
            event.actor_role or "—",
            event.action,
            event.summary,
        ])  # fmt: skip
    if manifest.rows == 0:
        sheet.text("No events match these filters.")
    if manifest.rows > PDF_MAX_ROWS:
        sheet.text(
            f"{manifest.rows - PDF_MAX_ROWS} more events match but are not listed here; "
            "export them as CSV or JSON Lines.",
            gap=16,
        )


def _manifest_page(sheet: _Sheet, manifest: Manifest) -> None:
    sheet.need(120)
    sheet.y -= 10
    sheet.text("Manifest", size=12, gap=18)
    sheet.text(f"Events inside the filter: {manifest.rows}")
    sheet.text(f"Range of the chain: #{manifest.first_seq} to #{manifest.last_seq}")
    sheet.text(f"First event hash: {manifest.first_event_hash or '—'}")
    sheet.text(f"Last event hash: {manifest.last_event_hash or '—'}")
    sheet.text(
        "The sha256 of this PDF is recorded in the audit trail as this export's audit.export event."
    )


def pdf_blocks(plan: ExportPlan, manifest: Manifest, actor_label: str) -> Iterator[bytes]:
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as out:
        sheet = _Sheet(out, plan, actor_label)  # type: ignore[arg-type]
        _front_matter(sheet, plan, actor_label)
        _table(sheet, plan, manifest)
        _manifest_page(sheet, manifest)
        sheet.canvas.save()
        out.seek(0)
        while block := out.read(BLOCK_BYTES):
            yield manifest.body(block)
    manifest.seal()  # a PDF has no trailer: its sha256 is the whole file's
