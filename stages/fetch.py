"""Stage fetch: put one source's raw data under data/raw/<source>."""

from smallvision.core.errors import UserError, exits_cleanly
from smallvision.core.io import atomic_dir, write_json
from smallvision.core.paths import RAW
from smallvision.core.progress import log
from smallvision.options.params import load_params
from smallvision.sources import load_sources
from stages import arguments


@exits_cleanly
def main() -> None:
    args = arguments(__doc__, "source")
    sources = load_sources(load_params().sources)
    if args.source not in sources:
        raise UserError(f"no source '{args.source}' under sources in params.yaml")
    source = sources[args.source]
    with atomic_dir(RAW / args.source) as tmp:  # a failed download leaves nothing behind
        try:
            info = source.fetch(tmp)
        except UserError as err:
            raise UserError(f"sources.{args.source}: {err}") from None
        write_json(tmp / "source.json", {"source": args.source, **source.model_dump(), **info})
    log(f"fetched {args.source}: {info}")


if __name__ == "__main__":
    main()
