"""The audit packet as a PDF (reportlab platypus), one numbered section per part of the packet.

It renders the data ``governance.packet.assemble`` returns, and nothing else, so the PDF and
the bundle's ``packet.json`` cannot disagree. Page streams are left uncompressed
(``pageCompression=0``) so that the section titles can be found in the file's bytes by a test
or by ``grep`` (no PDF library is needed to check that a packet has every section), and output
is ``invariant`` apart from its content. The audit section lists at most
``packet.PDF_AUDIT_LIMIT`` of the newest events, with the total; the bundle's JSON Lines file
has all of them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from governance.audit.models import AuditEvent

_STYLES = getSampleStyleSheet()
BODY = _STYLES["BodyText"]
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7.5, leading=9)
H1 = _STYLES["Heading1"]
H2 = _STYLES["Heading2"]
H3 = _STYLES["Heading3"]
WIDTH = A4[0] - 30 * mm
#: Long texts (minutes, rationale, evidence) are cut here in the PDF; the JSON has them whole.
TEXT_LIMIT = 4000


def _p(text: Any, style: ParagraphStyle = BODY) -> Paragraph:
    value = "—" if text in (None, "") else str(text)
    if len(value) > TEXT_LIMIT:
        value = value[:TEXT_LIMIT] + " … (cut; whole in packet.json)"
    return Paragraph(escape(value).replace("\n", "<br/>"), style)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Flowable:
    data = [[_p(h, SMALL) for h in header]]
    data += [[_p(cell, SMALL) for cell in row] for row in rows]
    if len(data) == 1:
        return _p("None recorded.")
    table = Table(data, colWidths=[WIDTH / len(header)] * len(header), repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf2")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _facts(pairs: Iterable[tuple[str, Any]]) -> Flowable:
    rows = [[_p(k, SMALL), _p(v, SMALL)] for k, v in pairs]
    table = Table(rows, colWidths=[WIDTH * 0.28, WIDTH * 0.72])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
            ]
        )
    )
    return table


# --- sections -------------------------------------------------------------------------------------


def _card(card: dict[str, Any]) -> list[Flowable]:
    c = card["completeness"]
    out: list[Flowable] = [
        _p(f"{card['name']} ({card['slug']}), version {card['version'] or 'none'}; "
           f"completeness {c['filled']} of {c['total']} fields ({c['percent']}%).")
    ]  # fmt: skip
    for section in card["sections"]:
        out.append(_p(section["title"], H3))
        pairs = []
        for f in section["fields"]:
            value = f["value"]
            if f["missing"]:
                value = f"MISSING — {f['note'] or 'no data recorded.'}"
            elif isinstance(value, dict):  # a table
                value = "\n".join(" | ".join(row) for row in [value["columns"], *value["rows"]])
            elif isinstance(value, list):
                value = "\n".join(f"- {item}" for item in value)
            pairs.append((f["label"], value))
        out.append(_facts(pairs))
    return out


def _versions(versions: list[dict[str, Any]]) -> list[Flowable]:
    out: list[Flowable] = []
    for v in versions:
        out.append(_p(f"Version {v['version']} ({v['status']})", H3))
        out.append(_facts([
            ("Artifact", v["artifact_uri"]), ("Artifact sha256", v["artifact_sha256"]),
            ("Code", v["code_ref"]), ("Training data", v["training_data_source"]),
            ("Training window", " to ".join(str(d) for d in v["training_window"])),
            ("Training set size", v["training_set_size"]), ("Label", v["label_definition"]),
            ("Decision thresholds", _json(v["decision_thresholds"])),
            ("Validation (overall)", _json(v["validation_overall"])),
            ("Features", ", ".join(f["name"] for f in v["features"])),
            ("Cohort columns", ", ".join(v["cohorts"])),
            ("Releases", ", ".join(v["releases"])),
            ("Registered", f"{v['created_at']} by {v['created_by']}"),
        ]))  # fmt: skip
        out.append(_p("Status history", SMALL))
        out.append(_table(["When", "Status", "By", "Reason"],
                          [(s["at"], s["status"], s["by"], s["reason"])
                           for s in v["status_history"]]))  # fmt: skip
        out.append(_p("Deferral policies", SMALL))
        out.append(_table(
            ["No.", "Min confidence", "Margin", "Exclusions", "Safety rules", "Reason"],
            [(p["number"], p["min_confidence"], p["threshold_margin"],
              ", ".join(r.get("code", "") for r in p["population_exclusions"]),
              ", ".join(r.get("code", "") for r in p["safety_rules"]), p["reason"])
             for p in v["deferral_policies"]],
        ))  # fmt: skip
        out.append(_p("Reference data", SMALL))
        out.append(_table(["No.", "File", "sha256", "Rows", "Labelled"],
                          [(r["number"], r["file_name"], r["file_sha256"], r["row_count"],
                            r["labelled_count"]) for r in v["reference_profiles"]]))  # fmt: skip
    return out or [_p("No version registered.")]


def _signatures(rows: list[dict[str, Any]]) -> Flowable:
    return _table(
        ["Printed name", "Role", "Meaning", "Signed at", "Signed content sha256", "State"],
        [(s["printed_name"], s["role"], s["meaning"], s["signed_at"], s["content_sha256"],
          s["state"] + (f": {s['void_reason']}" if s["void_reason"] else ""))
         for s in rows],
    )  # fmt: skip


def _releases(releases: list[dict[str, Any]]) -> list[Flowable]:
    out: list[Flowable] = []
    for r in releases:
        out.append(_p(f"{r['number']}: {r['title']} ({r['kind']}, {r['status']})", H3))
        out.append(_facts([
            ("Rationale", r["rationale"]), ("Author", r["author"]), ("Version", r["version"]),
            ("Sites", ", ".join(r["sites"])), ("Score mapping", _json(r["score_mapping"])),
            ("Thresholds", _json(r["thresholds"])),
            ("Deferral policy", r["deferral_policy_number"]),
            ("Restores", _json(r["restores"])), ("Origin", _json(r["origin"])),
            ("Created / approved / deployed",
             f"{r['created_at']} / {r['approved_at']} / {r['deployed_at']}"),
            ("Closed", f"{r['closed_at']} {r['closed_reason']}" if r["closed_at"] else None),
            ("Content sha256 (signed)", r["content_sha256"]),
            ("Content sha256 (now)", r["content_sha256_now"] + (
                "" if r["content_intact"] else "  CHANGED SINCE SIGNING")),
            ("Evidence", _json(r["evidence"])),
            ("Evidence files", "\n".join(f"{f['name']} ({f['kind']}, {f['size']} bytes) "
                                         f"sha256 {f['sha256']}" for f in r["files"])),
        ]))  # fmt: skip
        out.append(_p("Signature manifestations", SMALL))
        out.append(_signatures(r["signatures"]))
    return out or [_p("No release.")]


def _deployments(by_site: dict[str, list[dict[str, Any]]]) -> list[Flowable]:
    out: list[Flowable] = []
    for site, rows in by_site.items():
        out.append(_p(f"Site {site}", H3))
        out.append(_table(
            ["#", "Version", "Mode", "Started", "Ended", "Release", "Configuration", "Freezes"],
            [(d["id"], d["version"], d["mode"], f"{d['started_at']} by {d['started_by']}: "
              f"{d['reason']}", f"{d['ended_at']} {d['end_reason']}" if d["ended_at"] else "live",
              d["release"] or "none (outside a release)",
              f"mapping {_json(d['score_mapping'])}; thresholds {_json(d['thresholds'])}; "
              f"policy {d['deferral_policy_number']}",
              "\n".join(f"{f['at']} {'frozen' if f['frozen'] else 'unfrozen'}: {f['reason']}"
                        for f in d["freezes"]))
             for d in rows],
        ))  # fmt: skip
    return out or [_p("Never deployed.")]


def _monitoring(m: dict[str, Any]) -> list[Flowable]:
    bands = ("red", "orange", "yellow", "green", "insufficient")
    return [
        _p(f"{m['results']} metric results. Results per band, by month and layer:"),
        _table(
            ["Month", "Layer", *bands],
            [(r["month"], r["layer"], *(r["bands"][b] for b in bands)) for r in m["by_month"]],
        ),  # fmt: skip
        _p("Per metric: latest and worst band", SMALL),
        _table(
            ["Layer", "Metric", "Latest band", "Worst band", "Worst slice", "Worst window"],
            [
                (
                    x["layer"],
                    x["metric"],
                    x["latest_band"],
                    x["worst_band"],
                    x["worst_slice"],
                    x["worst_window_end"],
                )
                for x in m["metrics"]
            ],
        ),  # fmt: skip
    ]


def _incidents(incidents: dict[str, Any]) -> list[Flowable]:
    out: list[Flowable] = [
        _p(f"{incidents['count']} incidents ({incidents['drills']} drills besides); "
           f"{incidents['with_impact_assessment']} with an impact assessment, "
           f"{incidents['with_review']} with a post-incident review.")
    ]  # fmt: skip
    for i in incidents["items"]:
        drill = " [DRILL]" if i["is_drill"] else ""
        out.append(_p(f"INC-{i['number']}{drill}: {i['title']} ({i['severity']}, {i['status']})",
                      H3))  # fmt: skip
        out.append(_facts([
            ("Site / slice", f"{i['site']} / {i['slice']}"), ("Layer / band",
             f"{i['layer']} / {i['band']}"), ("Commander", i["commander"]),
            ("Triggered / acknowledged", f"{i['triggered_at']} / {i['acknowledged_at']}"),
            ("Mitigated / resolved / closed",
             f"{i['mitigated_at']} / {i['resolved_at']} / {i['closed_at']}"),
            ("First harmful day", i["first_harmful_day"]), ("Remedy", i["remedy"]),
            ("Impact assessment", _json(i["impact"]) if i["impact"] else None),
            ("Post-incident review", _json(i["review"]) if i["review"] else None),
        ]))  # fmt: skip
        if i["runbook_checks"]:
            out.append(_table(["Step", "Title", "Evidence", "By", "At"],
                              [(c["step"], c["title"], c["evidence"], c["by"], c["at"])
                               for c in i["runbook_checks"]]))  # fmt: skip
        out.append(_p("Timeline", SMALL))
        out.append(
            _table(
                ["At", "By", "Kind", "Entry"],
                [(t["at"], t["by"], t["kind"], t["text"]) for t in i["timeline"]],
            )
        )
    return out


def _reasons(rows: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['label']}: {r['count']}" for r in rows) or "—"


def _workflow(w: dict[str, Any]) -> list[Flowable]:
    cases = w["deferred_cases"]
    return [
        _facts(
            [
                ("Predictions (live)", w["predictions"]),
                ("Deferred", w["deferred"]),
                ("Deferral rate", w["deferral_rate"]),
                ("Top deferral reasons", _reasons(w["top_deferral_reasons"])),
                ("Acted", w["acted"]),
                ("Overridden by clinicians", w["overridden"]),
                ("Override rate", w["override_rate"]),
                ("Top override reasons", _reasons(w["top_override_reasons"])),
                (
                    "Deferred cases opened / still open",
                    f"{cases['opened']} / {cases['still_open']}",
                ),
                ("Reviewers agreed / overrode", f"{cases['agreed']} / {cases['overridden']}"),
                ("Reviewer override rate", cases["reviewer_override_rate"]),
            ]
        ),  # fmt: skip
        _p("Per site", SMALL),
        _table(
            ["Site", "Predictions", "Deferred", "Deferral rate"],
            [
                (s["site"], s["predictions"], s["deferred"], s["deferral_rate"])
                for s in w["deferral_by_site"]
            ],
        ),  # fmt: skip
    ]


def _meetings(meetings: list[dict[str, Any]]) -> list[Flowable]:
    out: list[Flowable] = []
    for m in meetings:
        out.append(
            _p(
                f"Review of {m['scheduled_for']}"
                + (f", held {m['held_at']}" if m["held_at"] else " (not held yet)"),
                H3,
            )
        )
        out.append(_facts([
            ("Period from", m["period_start"]), ("Attendees", m["attendees"]),
            ("Minutes", m["minutes"]), ("Recorded by", m["recorded_by"]),
            ("Decisions", "\n".join(f"- {d}" for d in m["decisions"]) if m["decisions"] else None),
        ]))  # fmt: skip
        out.append(_table(["Action", "Owner", "Due", "Status", "Closed"],
                          [(a["text"], a["owner"], a["due"], a["status"],
                            f"{a['closed_at'] or ''} {a['closed_note']}".strip())
                           for a in m["actions"]]))  # fmt: skip
    return out or [_p("No review meeting yet.")]


def _audit(summary: dict[str, Any], events: Sequence[AuditEvent]) -> list[Flowable]:
    shown = len(events)
    note = (
        f"{summary['count']} audit events; all of them are in {summary['file']} in the bundle."
        + (f" The newest {shown} are listed here." if shown < summary["count"] else "")
        + f" Rule: {summary['rule']}."
    )
    return [
        _p(note),
        _table(
            ["#", "When (UTC)", "Actor", "Action", "Summary", "Hash"],
            [
                (
                    e.seq,
                    e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor_label,
                    e.action,
                    e.summary,
                    e.hash[:16],
                )
                for e in events
            ],
        ),  # fmt: skip
    ]


def _section_flowables(key: str, packet: dict[str, Any], events: Sequence[AuditEvent]) -> list[Any]:
    if key == "audit":
        return _audit(packet["audit"], events)
    builders = {
        "card": _card, "versions": _versions, "releases": _releases,
        "deployments": _deployments, "monitoring": _monitoring, "incidents": _incidents,
        "workflow": _workflow, "review_meetings": _meetings,
    }  # fmt: skip
    return builders[key](packet[key])


def render(packet: dict[str, Any], events: Sequence[AuditEvent]) -> bytes:
    """The PDF of ``packet`` with ``events`` (the newest of the model's audit events)."""
    buffer = io.BytesIO()
    model = packet["model"]
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Audit packet: {model['name']}",
        author="Vigil",
        pageCompression=0,
        invariant=1,
    )
    story: list[Any] = [
        _p(f"Audit packet: {model['name']}", _STYLES["Title"]),
        _p(f"Model {model['slug']}, risk tier {model['risk_tier']}, status {model['status']}. "
           f"Generated {packet['generated_at']} by Vigil. Machine-readable twin: packet.json "
           "in the bundle."),
        Spacer(1, 4 * mm),
        _p("Contents", H2),
    ]  # fmt: skip
    titles = [t for _, t in packet_sections(packet)]
    story += [_p(f"{n}. {t}") for n, t in enumerate(titles, 1)]
    for n, (key, title) in enumerate(packet_sections(packet), 1):
        story += [PageBreak(), _p(f"{n}. {title}", H1)]
        story += _section_flowables(key, packet, events)
    doc.build(story)
    return buffer.getvalue()


def packet_sections(packet: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["key"], s["title"]) for s in packet["sections"]]
