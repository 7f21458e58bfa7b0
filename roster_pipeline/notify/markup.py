"""Small builders for the two bodies: HTML with inline styles and aligned plain-text tables.

Mail clients (Gmail, Outlook's Word engine) ignore external CSS, scripts and often ``<style>`` blocks,
so every element carries its own ``style=""`` and layout is plain tables.  Every value goes through
``esc`` here, not at the call sites, so SIS data (a student named ``<script>``) can never become markup:
callers pass text, and only ``Raw`` (built by this module) is trusted.
"""

from __future__ import annotations

import html
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FONT = "font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.4;color:#1f2328"
TABLE = "border-collapse:collapse;margin:8px 0 16px 0;font-size:13px"
TH = "text-align:left;padding:6px 8px;border:1px solid #d0d7de;background:#f6f8fa;font-weight:bold"
TD = "padding:6px 8px;border:1px solid #d0d7de;vertical-align:top"
TD_NUM = TD + ";text-align:right;white-space:nowrap"
BAD = ";background:#ffebe9;color:#82071e;font-weight:bold"
MUTED = "color:#57606a;font-size:12px"
H2 = "font-size:16px;margin:20px 0 6px 0;color:#1f2328"
PRE = (
    "font-family:Consolas,Menlo,monospace;font-size:12px;background:#f6f8fa;border:1px solid #d0d7de;"
    "padding:8px;white-space:pre-wrap;margin:4px 0 8px 0"
)


@dataclass(frozen=True)
class Raw:
    """HTML produced by this module (already escaped); anything else is treated as text."""

    html: str


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, a muted second line (e.g. the threshold), numeric alignment, highlight."""

    text: str
    note: str = ""
    numeric: bool = False
    bad: bool = False


def esc(value: object) -> str:
    """HTML-escape any value (quotes too, since values also land in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def one_line(value: object) -> str:
    """Collapse whitespace and newlines, so SIS text cannot break a header or a text-table row."""
    return " ".join(str(value).split())


def fmt_int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def fmt_pct(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


def fmt_limit(value: float | None) -> str:
    return "no limit" if value is None else f"limit {value:g}%"


def fmt_time(value: datetime | None, tz_name: str) -> str:
    """A timestamp in the district's own timezone (naive values are taken as UTC)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        local = value.astimezone(zoneinfo.ZoneInfo(tz_name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        local = value.astimezone(UTC)
    return local.strftime("%Y-%m-%d %H:%M %Z")


def fmt_duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = round(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# ---------------------------------------------------------------- HTML


def h2(text: str) -> Raw:
    return Raw(f'<h2 style="{H2}">{esc(text)}</h2>')


def p(*pieces: str | Raw, style: str = "margin:6px 0") -> Raw:
    body = "".join(piece.html if isinstance(piece, Raw) else esc(piece) for piece in pieces)
    return Raw(f'<p style="{style}">{body}</p>')


def strong(text: str) -> Raw:
    return Raw(f"<strong>{esc(text)}</strong>")


def code(text: str) -> Raw:
    return Raw(
        f'<code style="font-family:Consolas,Menlo,monospace;background:#f6f8fa;padding:1px 3px">{esc(text)}</code>'
    )


def pre(text: str) -> Raw:
    return Raw(f'<pre style="{PRE}">{esc(text)}</pre>')


def link(url: str, text: str) -> Raw:
    # Only http(s) links: a `javascript:` URL from bad data must not become clickable.
    if not url.lower().startswith(("http://", "https://")):
        return Raw(esc(text))
    return Raw(f'<a href="{esc(url)}" style="color:#0969da">{esc(text)}</a>')


def bullets(items: Iterable[str | Raw]) -> Raw:
    lis = "".join(
        f'<li style="margin:2px 0">{item.html if isinstance(item, Raw) else esc(item)}</li>' for item in items
    )
    return Raw(f'<ul style="margin:4px 0 12px 0;padding-left:20px">{lis}</ul>')


def definition_table(rows: Sequence[tuple[str, str | Raw]]) -> Raw:
    body = "".join(
        f'<tr><td style="{TD};{MUTED};border:none;padding:2px 12px 2px 0">{esc(k)}</td>'
        f'<td style="{TD};border:none;padding:2px 0">{v.html if isinstance(v, Raw) else esc(v)}</td></tr>'
        for k, v in rows
    )
    return Raw(f'<table role="presentation" style="{TABLE}">{body}</table>')


def _cell_html(cell: Cell | str) -> str:
    if not isinstance(cell, Cell):
        cell = Cell(str(cell))
    style = (TD_NUM if cell.numeric else TD) + (BAD if cell.bad else "")
    note = f'<br><span style="{MUTED};font-weight:normal">{esc(cell.note)}</span>' if cell.note else ""
    return f'<td style="{style}">{esc(cell.text)}{note}</td>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell | str]]) -> Raw:
    head = "".join(f'<th style="{TH}">{esc(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(_cell_html(c) for c in row) + "</tr>" for row in rows)
    return Raw(f'<table style="{TABLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def document(title: str, blocks: Iterable[Raw]) -> str:
    body = "\n".join(block.html for block in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title></head>\n"
        f'<body style="margin:0;padding:16px;{FONT}">\n'
        f'<div style="max-width:900px">\n{body}\n</div>\n</body></html>\n'
    )


# ---------------------------------------------------------------- plain text


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Cell | str]]) -> str:
    """Columns padded to width; highlighted cells get a trailing ``!`` so they stand out without colour."""

    def text_of(cell: Cell | str) -> str:
        if not isinstance(cell, Cell):
            return one_line(cell)
        out = one_line(cell.text)
        if cell.note:
            out += f" [{one_line(cell.note)}]"
        return out + (" !" if cell.bad else "")

    grid = [list(headers)] + [[text_of(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in grid) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(grid):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
