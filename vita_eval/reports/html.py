"""report.md as one self-contained HTML file (PNG plots embedded as base64).

Converts only the Markdown subset markdown.py emits (headings, pipe tables,
bullet lists, images, paragraphs, `code`, **bold** and links to sibling pages), so no Markdown library
is needed and the HTML cannot drift from report.md's content.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from vita_eval import fsio

STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px}
th{background:#f3f3f3}td{white-space:nowrap}code{background:#f3f3f3;padding:0 3px}img{max-width:100%}"""


def inline(text: str) -> str:
    """Escape, then render `code`, **bold** and [links](relative.html) spans."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\[([^\]]+)\]\(([\w./-]+\.html)\)", r'<a href="\2">\1</a>', out)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)


def table_html(lines: list[str]) -> str:
    rows = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image_html(alt: str, name: str, base: Path) -> str:
    data = base64.b64encode((base / name).read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def list_items(block: list[str]) -> list[str]:
    """Bullet texts, with wrapped continuation lines joined to their item."""
    items: list[str] = []
    for line in block:
        if line.lstrip().startswith("- "):
            items.append(line.lstrip()[2:])
        elif items:
            items[-1] += " " + line.strip()
    return items


def block_html(block: list[str], base: Path) -> str:
    """One blank-line-separated block of report.md."""
    first = block[0]
    if heading := re.match(r"(#{1,6}) (.*)", first):
        return f"<h{len(heading[1])}>{inline(heading[2])}</h{len(heading[1])}>"
    if image := re.fullmatch(r"!\[(.*)\]\((.+\.png)\)", first):
        return image_html(image[1], image[2], base)
    if first.startswith("|"):
        return table_html(block)
    if first.lstrip().startswith("- ") or first.endswith(":") and len(block) > 1:
        title = "" if first.lstrip().startswith("- ") else f"<p>{inline(first)}</p>"
        return title + "<ul>" + "".join(f"<li>{inline(item)}</li>" for item in list_items(block)) + "</ul>"
    return f"<p>{inline(' '.join(block))}</p>"


def blocks(markdown_text: str) -> list[list[str]]:
    return [b.splitlines() for b in re.split(r"\n\s*\n", markdown_text.strip())]


def write_html(markdown_text: str, path: Path, *, base: Path) -> Path:
    """Write `path`; images named in the Markdown are read from `base`."""
    body = "\n".join(block_html(b, base) for b in blocks(markdown_text))
    page = f'<!doctype html><html><head><meta charset="utf-8"><title>vita-eval report</title>' \
           f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    fsio.write_text(path, page)
    return path
