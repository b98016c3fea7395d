"""``python -m dashboards [OUTPUT]``: regenerate the Grafana dashboards (``make dashboards``)."""

from __future__ import annotations

import sys
from pathlib import Path

from dashboards.generate import OUTPUT, write


def main(arguments: list[str]) -> None:
    output = Path(arguments[0]) if arguments else OUTPUT
    for path in write(output):
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
