"""Stage report: leaderboard, figures, reports/index.html and reports/README.md."""

from smallvision.config import load_params
from smallvision.errors import exits_cleanly
from smallvision.report.render import build_report


@exits_cleanly
def main() -> None:
    build_report(load_params())


if __name__ == "__main__":
    main()
