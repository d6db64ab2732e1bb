"""What one analysis is run with, and the budgets that keep any one input from taking the server.

:class:`AnalysisSettings` (model, detector, test-time augmentation, label scheme, budgets) is the one
settings type of an analysis: the pages, the CLI, ``batch`` and the HTTP API build it and hand it to the
inference code, which turns it into a recognizer and a detector.

:class:`Budgets` holds every per-request and per-server limit. Each field has a safe default and an
environment override ``FER_<FIELD NAME IN CAPITALS>`` (``FER_MAX_IMAGE_PIXELS=20000000``), read by
:meth:`Budgets.from_env`; docs/security.md lists them.

This module sits low in the package: it imports nothing of ``fer_core`` but :mod:`fer_core.model_card`, so
every layer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from fer_core.model_card import default_model_path

Use = Literal["photo", "video", "batch", "live"]
ENV_PREFIX = "FER_"


class SettingsError(ValueError):
    """A setting (an environment variable or an option) whose value cannot be used; names it."""


@dataclass(frozen=True)
class Budgets:
    """Limits per input, per request and per server. Work over a budget stops with a message naming the
    budget and keeps what was done; an input over a size budget is refused before it is decoded."""

    max_upload_bytes: int = 200 * 1024 * 1024  # one uploaded file (photo or video)
    max_image_pixels: int = 50_000_000  # one photo, from its header (about 8200 × 6100)
    max_frame_pixels: int = 50_000_000  # one video frame, from the stream header: the photos' rule
    max_video_frames: int = 20_000  # frames decoded per video, counted as they are decoded
    max_video_seconds: float = 600.0  # wall-clock seconds spent on one video
    max_files_per_upload: int = 20  # files analysed from one upload; the others are named, not analysed
    max_concurrent_analyses: int = 2  # photos or videos the server analyses at once
    cache_max_bytes: int = 256 * 1024 * 1024  # the app's cache of analysed photos, in bytes
    cache_ttl_s: float = 600.0  # an analysed photo leaves the cache after this many seconds unused
    max_request_bytes: int = 64 * 1024 * 1024  # one HTTP API request body
    max_images_per_request: int = 16  # images in one HTTP API request
    max_in_flight_requests: int = 8  # HTTP API requests being analysed at once; more get 503
    max_faces_per_request: int = 1024  # 48×48 faces in one HTTP API classify request
    max_body_seconds: float = 60.0  # to receive one HTTP API request body; a slower one gets 408

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise SettingsError(f"{env_name(item.name)}: must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Budgets:
        """The defaults, overridden by every ``FER_<FIELD>`` variable that is set."""
        environ = os.environ if environ is None else environ
        overrides = {}
        for item in fields(cls):
            raw = environ.get(env_name(item.name))
            if raw is None or raw.strip() == "":
                continue
            kind = float if item.type in ("float", float) else int
            try:
                overrides[item.name] = kind(raw)
            except ValueError:
                raise SettingsError(f"{env_name(item.name)}={raw!r}: not a number") from None
        return cls(**overrides)


def env_name(field_name: str) -> str:
    """The environment variable that overrides a setting: ``max_image_pixels`` → ``FER_MAX_IMAGE_PIXELS``."""
    return ENV_PREFIX + field_name.upper()


# The face detector each use starts with. Chosen by the rule in docs/detectors.md on the measurements of
# benchmarks/detector_study.py; a user can always pick another one in the sidebar or with --detector.
DEFAULT_DETECTORS: dict[str, str] = {"photo": "yunet", "video": "yunet", "batch": "yunet", "live": "yunet"}


def default_detector(use: Use) -> str:
    """The detector a use starts with (:data:`DEFAULT_DETECTORS`)."""
    return DEFAULT_DETECTORS[use]


@dataclass(frozen=True)
class AnalysisSettings:
    """One analysis: which model, which face detector, whether to average test-time views, which label
    view (``None``: the seven emotions; ``"smile"``: happy or not), and the budgets it runs under.

    Frozen and comparable, so a page can keep a result beside the settings that made it."""

    model: str = field(default_factory=lambda: str(default_model_path()))
    detector: str = field(default_factory=lambda: default_detector("photo"))
    tta: bool = True
    scheme: str | None = None
    budgets: Budgets = field(default_factory=Budgets.from_env)

    def with_changes(self, **changes: object) -> AnalysisSettings:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)
