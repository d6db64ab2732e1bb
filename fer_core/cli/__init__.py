"""Command line: ``python -m fer_core {summary,train,sweep,evaluate,predict,video,batch,serve,...} ...``."""

from __future__ import annotations

import argparse
import os
import sys

from fer_core.cli import analysis, data, serve, training
from fer_core.cli.common import VERBOSE_HELP, check_outputs, parent_parsers
from fer_core.tensorflow_start import import_tensorflow, mute_start_up

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Each command's parser, in the order ``--help`` lists them; the modules hold the commands by group.
COMMANDS = (data.add_summary, training.add_train, training.add_sweep, analysis.add_evaluate, training.add_publish,
            training.add_remeasure, training.add_export, training.add_ensemble, analysis.add_predict,
            analysis.add_video, analysis.add_batch, serve.add_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    parser.set_defaults(uses_tensorflow=True, mutes_tensorflow=True, output_files=(), output_folders=())
    parents = parent_parsers()
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(sub, parents)
    return parser


def main(argv: list[str] | None = None) -> int:
    from fer_core.data import DataError
    from fer_core.inference.detect import DetectorError
    from fer_core.outputs import OutputError
    from fer_core.settings import SettingsError

    args = build_parser().parse_args(argv)
    try:
        check_outputs(args)  # before any work (and before TensorFlow loads): a refusal costs nothing
        if args.mutes_tensorflow and not args.verbose:
            mute_start_up()
        if args.uses_tensorflow:  # the commands that always need it (training); the others load it with a Keras model
            import_tensorflow()
        return args.func(args)
    except (DataError, DetectorError, FileNotFoundError, OutputError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
