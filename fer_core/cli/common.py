"""What several commands share: the quiet TensorFlow import, the options of every command that
classifies faces, the detector option, and the :class:`~fer_core.settings.AnalysisSettings` those
options make."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from fer_core.settings import AnalysisSettings, Use, default_detector

VERBOSE_HELP = "show TensorFlow's start-up messages and the traceback of each failed input"


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


@dataclass(frozen=True)
class Parents:
    """Parent parsers whose options several commands take: ``verbose`` (``--verbose`` after the
    command name) and ``classify`` (model, test-time augmentation and label view)."""

    verbose: argparse.ArgumentParser
    classify: argparse.ArgumentParser


def parent_parsers() -> Parents:
    # The same --verbose as before the command name; SUPPRESS keeps a --verbose given before it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    classify = argparse.ArgumentParser(add_help=False)
    classify.add_argument("--model", help="a .keras model (default: the shipped model, or $FER_MODEL)")
    classify.add_argument("--no-tta", action="store_true", help="no test-time augmentation (mirrored copy)")
    classify.add_argument("--scheme", help="classes to report: the model's own (default) or a view of them, "
                                           "e.g. smile (happy vs. not, at the threshold chosen on validation)")
    return Parents(verbose, classify)


def add_detector_option(parser: argparse.ArgumentParser, use: Use) -> None:
    """``--detector``, defaulting to ``use``'s detector (:data:`fer_core.settings.DEFAULT_DETECTORS`)."""
    from fer_core.inference.detect import DETECTOR_NAMES

    default = default_detector(use)
    parser.add_argument("--detector", choices=DETECTOR_NAMES, default=default,
                        help=f"face detector: yunet or blazeface (CNNs: find tilted, turned and unevenly lit faces) "
                             f"or haar (OpenCV's 2001 cascade, frontal faces only); default {default} "
                             "(docs/detectors.md)")


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path the command was given, checked before it starts: the options its parser names in
    ``output_files`` (a file each, replaced when it exists) and ``output_folders`` (created where missing).
    Raises :class:`~fer_core.outputs.OutputError` for the first that cannot be written."""
    from fer_core.outputs import check_output_file, check_output_folder

    for name in args.output_files:
        if getattr(args, name):
            check_output_file(getattr(args, name))
    for name in args.output_folders:
        if getattr(args, name):
            check_output_folder(getattr(args, name))


def analysis_settings(args: argparse.Namespace) -> AnalysisSettings:
    """The analysis the ``classify`` options (and ``--detector`` where the command has it) ask for."""
    settings = AnalysisSettings(tta=not args.no_tta, scheme=args.scheme)
    if args.model:
        settings = settings.with_changes(model=args.model)
    if getattr(args, "detector", None):
        settings = settings.with_changes(detector=args.detector)
    return settings
