"""``summary``: what a dataset holds."""

from __future__ import annotations

import argparse
import json

from fer_core.cli.common import Parents
from fer_core.outputs import display_path


def cmd_summary(args: argparse.Namespace) -> int:
    from fer_core.data import load_dataset, summary_text

    result = load_dataset(args.path, skip_bad_rows=True)
    if args.json:
        payload = {
            "path": display_path(args.path),
            "counts": result.counts(),
            "total": len(result.data),
            "skipped": [{"source": display_path(s.source), "reason": s.reason} for s in result.skipped],
        }
        print(json.dumps(payload, indent=2))
    else:
        print(summary_text(result), end="")
    return 0


def add_summary(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("summary", parents=[parents.verbose],
                       help="faces per split and class in a Kaggle CSV or an image-folder tree")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_summary, uses_tensorflow=False)
