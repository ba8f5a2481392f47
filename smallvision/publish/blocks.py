"""Generated blocks inside hand-written pages: between `<!-- name:start -->` and `<!-- name:end -->`."""

from __future__ import annotations

import re
from pathlib import Path

from smallvision.core.errors import UserError


def block_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(f"<!-- {name}:start -->") + r"\n.*?" + re.escape(f"<!-- {name}:end -->"), re.S)


def generated_block(text: str, name: str, where: Path) -> str:
    """What a page holds between its `<!-- name:start -->` and `<!-- name:end -->` markers."""
    match = block_pattern(name).search(text)
    if not match:
        raise UserError(f"{where} has no block between <!-- {name}:start --> and <!-- {name}:end -->: "
                        "put the two markers back where the generated table belongs")
    return match.group(0)[len(f"<!-- {name}:start -->") + 1:-len(f"<!-- {name}:end -->")].rstrip("\n")


def update_block(page: Path, name: str, content: str) -> bool:
    """Rewrites the page's generated block `name` with `content`; True when it changed."""
    text = page.read_text()
    generated_block(text, name, page)  # the markers must be there
    new = block_pattern(name).sub(lambda _: f"<!-- {name}:start -->\n{content}\n<!-- {name}:end -->", text)
    if new != text:
        page.write_text(new)
    return new != text
