"""python -m smallvision.publish: redraw the published pages from their data.

  python -m smallvision.publish                        # every page, the index, README's headline, docs/recipes.md,
                                                       # docs/ssl.md's verdicts, from docs/results/**/*.json
  python -m smallvision.publish results TRACK [--workspace DIR]   # docs/results/TRACK.json from a finished run
                                                       # (DIR: where `profile TRACK` and `dvc repro` ran), then all
  python -m smallvision.publish compare TRACK:ARM TRACK:ARM       # one arm minus another, paired where it can
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.publish import curves
from smallvision.publish.blocks import update_block
from smallvision.publish.catalogue import render_recipes
from smallvision.publish.compare import between
from smallvision.publish.headline import render_headline
from smallvision.publish.index import render_index
from smallvision.publish.model import Page, read_page, write_page
from smallvision.publish.page import render, split_heads
from smallvision.publish.ssl import render_ssl_verdicts

DOCS = Path("docs")
RESULTS = DOCS / "results"
ARCHIVE = RESULTS / "archive"
README = Path("README.md")
SSL_DOC = DOCS / "ssl.md"


def committed(folder: Path) -> dict[str, Page]:
    """Each page's data in `folder` (docs/results or its archive), by name, in name order."""
    return {path.stem: read_page(path) for path in sorted(folder.glob("*.json"))}


def redraw() -> None:
    current, archived = committed(RESULTS), committed(ARCHIVE)
    for folder, pages in ((RESULTS, current), (ARCHIVE, archived)):
        for name, page in pages.items():
            (folder / f"{name}.md").write_text(render(page))
            for dataset in split_heads(page):
                curves.draw(page, dataset, page.on_split(dataset, "supervised"), folder)
    (RESULTS / "README.md").write_text(render_index(current, archived))
    (DOCS / "recipes.md").write_text(render_recipes())
    print(f"wrote {len(current)} track page(s), {len(archived)} archived page(s), {RESULTS / 'README.md'}, "
          f"{DOCS / 'recipes.md'}")
    print("README.md headline block " + ("rewritten" if update_block(README, "headline", render_headline(current))
                                         else "already up to date"))
    print(f"{SSL_DOC} verdicts block " + ("rewritten" if update_block(
        SSL_DOC, "ssl-verdicts", render_ssl_verdicts({**current, **archived})) else "already up to date"))


def arm_of(spec: str) -> tuple[Page, object]:
    track, _, arm = spec.partition(":")
    for folder in (RESULTS, ARCHIVE):
        if (folder / f"{track}.json").exists():
            page = read_page(folder / f"{track}.json")
            found = [candidate for candidate in page.arms if candidate.name == arm]
            if found:
                return page, found[0]
            raise UserError(f"{spec}: {folder / track}.json has no arm '{arm}'; its arms: "
                            f"{', '.join(candidate.name for candidate in page.arms)}")
    raise UserError(f"{spec}: expected TRACK:ARM of a committed page (docs/results/TRACK.json or its archive)")


def compare_text(first: str, second: str) -> str:
    (page, ours), (_, theirs) = arm_of(first), arm_of(second)
    lines = [f"{first} minus {second} ({page.confidence:.0%} intervals):"]
    for metric in ("accuracy", "macro_f1", "finetune_accuracy", "knn20_accuracy"):
        if ours.figures(metric) and theirs.figures(metric):
            comparison = between(ours.figures(metric), theirs.figures(metric), page.confidence)
            lines.append(f"  {metric}: {comparison.text()} ({comparison.how}, n={comparison.n})")
    return "\n".join(lines)


@exits_cleanly
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smallvision.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    results = sub.add_parser("results", help="docs/results/TRACK.json from a finished run, then redraw everything")
    results.add_argument("track")
    results.add_argument("--workspace", type=Path, default=Path("."), help="where the track ran (default: here)")
    compare = sub.add_parser("compare", help="print one arm of a committed page minus another's, with the interval")
    compare.add_argument("first", metavar="TRACK:ARM")
    compare.add_argument("second", metavar="TRACK:ARM")
    args = parser.parse_args(argv)
    if args.command == "compare":  # reads the committed pages, writes nothing
        print(compare_text(args.first, args.second))
        return
    if args.command == "results":
        from smallvision.publish.collect import page_from_run

        if not re.fullmatch(r"\w+", args.track):
            raise UserError(f"a track name holds only letters, digits and '_' (got {args.track!r})")
        print(f"wrote {write_page(page_from_run(args.track, args.workspace), RESULTS)}")
    redraw()


if __name__ == "__main__":
    main()
