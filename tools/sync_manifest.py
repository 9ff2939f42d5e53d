"""Write the file-derived facts of weights/manifest.json (sha256, bytes, kind, input contract)
from the shipped files, after a file is added or replaced, and the model cards of
weights/README.md from the manifest. The hand-written parts of the manifest stay.

    python tools/sync_manifest.py            # rewrite weights/manifest.json and weights/README.md
    python tools/sync_manifest.py --check    # exit 1 if either is out of step (tests do the same)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from srfer.convert.manifest import model_cards, synced, write_manifest

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only check; exit 1 when out of step.")
    args = parser.parse_args()
    path, cards = WEIGHTS / "manifest.json", WEIGHTS / "README.md"
    current = json.loads(path.read_text())
    fresh = synced(current, WEIGHTS)
    if args.check:
        stale = [name for name in current if current[name] != fresh[name]]
        if cards.read_text() != model_cards(fresh):
            stale.append("README.md")
        print("in step" if not stale else f"out of step: {', '.join(stale)}")
        return 1 if stale else 0
    write_manifest(fresh, path)
    cards.write_text(model_cards(fresh))
    print(f"wrote {path} and {cards}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
