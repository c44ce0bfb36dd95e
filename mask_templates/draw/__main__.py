"""Command line, run from the repository root:

python -m mask_templates.draw [OUT_DIR] [--only NAME ...]   (default OUT_DIR: mask_templates/)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as package_doc
from .masks import MASKS
from .output import draw_all

TEMPLATE_DIR = Path(__file__).resolve().parents[1]  # mask_templates/


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m mask_templates.draw [OUT_DIR] [--only NAME ...]."""
    parser = argparse.ArgumentParser(
        prog="python -m mask_templates.draw", description=package_doc.splitlines()[0]
    )
    parser.add_argument(
        "out_dir",
        nargs="?",
        type=Path,
        default=TEMPLATE_DIR,
        help=f"folder to write PNGs and templates.json (default: {TEMPLATE_DIR})",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"redraw only these: {', '.join(MASKS)}, occluders",
    )
    args = parser.parse_args(argv)
    meta = draw_all(args.out_dir, args.only)
    print(
        f"{len(meta['templates'])} templates, {len(meta['occluders'])} occluders in {args.out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
