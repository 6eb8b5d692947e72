#!/usr/bin/env python
"""Fail if a stored notebook has outputs or lacks a `parameters` cell; `--fix` strips outputs first.

Usage: python tools/check_notebooks.py [--fix] [NOTEBOOK ...]   (default: notebooks/*.ipynb)
CI runs it without --fix; run it with --fix before committing an edited notebook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from lnlab.suite import NOTEBOOKS_DIR, notebook_problems, strip_notebook  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks or folders of notebooks to check (default: notebooks/)")
    parser.add_argument("--fix", action="store_true", help="strip outputs and execution counts in place first")
    args = parser.parse_args(argv)
    paths = []
    for given in args.notebooks or [NOTEBOOKS_DIR]:
        paths += sorted(given.glob("*.ipynb")) if given.is_dir() else [given]
    failed = False
    for path in paths:
        if args.fix and strip_notebook(path):
            print(f"stripped {path}")
        for problem in notebook_problems(path):
            print(f"{path}: {problem}", file=sys.stderr)
            failed = True
    if failed:
        print("fix with: python tools/check_notebooks.py --fix", file=sys.stderr)
    else:
        print(f"{len(paths)} notebooks clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
