"""Write docs/cli.md from the CLI itself (every command, argument and option).

python tools/cli_docs.py            # rewrite docs/cli.md
python tools/cli_docs.py --check    # exit 1 if it is out of step (a test does the same)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srfer.cli.reference import markdown

TARGET = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only check; exit 1 when out of step.")
    args = parser.parse_args()
    text = markdown()
    if args.check:
        fresh = TARGET.is_file() and TARGET.read_text() == text
        print("in step" if fresh else "out of step: run python tools/cli_docs.py")
        return 0 if fresh else 1
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
