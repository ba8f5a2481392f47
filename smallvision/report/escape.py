"""Text that comes from params or data (a title, a published source, the machine's description),
set into the report's Markdown: the page's HTML is rendered from that Markdown, which lets raw
HTML through, so such text is escaped, never trusted (a title "<script>..." once landed verbatim
in reports/index.html, and a newline in it split the heading)."""

from __future__ import annotations

import html
import re

# What Markdown reads as formatting inside a line (emphasis, code, links, headings' closing #s,
# table cells, strike-through); HTML's own characters (& < > " ') are html.escape's.
MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]#|~])")


def markdown_text(value) -> str:
    """`value` as one line of literal text in Markdown (and in the HTML made from it)."""
    line = " ".join(str(value).split())
    return html.escape(MARKDOWN_PUNCTUATION.sub(r"\\\1", line), quote=True)
