"""Stage report: leaderboard, figures, reports/index.html and reports/README.md."""

from smallvision.core.errors import exits_cleanly
from smallvision.options.params import load_params
from smallvision.report.render import build_report


@exits_cleanly
def main() -> None:
    build_report(load_params())


if __name__ == "__main__":
    main()
