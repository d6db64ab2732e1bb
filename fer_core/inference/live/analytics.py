"""The records of one live camera session as the page collects them: main face over time, share of
time per emotion, per-frame rows and CSV."""

from __future__ import annotations

import itertools
import queue
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from fer_core.inference.live.processor import FPS_WINDOW, FrameRecord
from fer_core.inference.results import face_row
from fer_core.inference.tracking import main_face

if TYPE_CHECKING:
    import pandas

MAX_GAP_S = 1.0  # a longer pause between two frames (a stalled stream) counts as this long in the summary
NO_FACE = "no face"


class LiveSession:
    """The records of one camera session as the page collects them: charts, summary and CSV."""

    def __init__(self, labels: Sequence[str], max_records: int = 50_000):
        self.labels = tuple(labels)
        self.records: deque[FrameRecord] = deque(maxlen=max_records)

    def drain(self, source: queue.Queue) -> int:
        """Move every record waiting in ``source`` into the session; how many were moved."""
        moved = 0
        while True:
            try:
                self.records.append(source.get_nowait())
            except queue.Empty:
                return moved
            moved += 1

    @property
    def latest(self) -> FrameRecord | None:
        return self.records[-1] if self.records else None

    def recent_latency_ms(self, frames: int = FPS_WINDOW) -> float | None:
        """Median processing time of the last ``frames`` frames (``None`` before the first)."""
        recent = [r.latency_ms for r in itertools.islice(reversed(self.records), frames)]
        return float(np.median(recent)) if recent else None

    def main_face_probabilities(self, last_s: float | None = None) -> pandas.DataFrame:
        """Long table ``time_s, emotion, probability`` of the main face per frame (the last ``last_s`` seconds)."""
        import pandas as pd

        records = list(self.records)
        if last_s is not None and records:
            records = [r for r in records if r.time_s >= records[-1].time_s - last_s]
        rows = [(r.time_s, label, face.probabilities[label])
                for r in records if (face := main_face(r.faces)) is not None for label in self.labels]
        return pd.DataFrame(rows, columns=["time_s", "emotion", "probability"])

    def durations(self) -> np.ndarray:
        """Seconds each frame stood for: up to the next frame (at most :data:`MAX_GAP_S`); the
        last frame gets the median interval."""
        times = np.array([r.time_s for r in self.records], np.float64)
        if len(times) < 2:
            return np.zeros(len(times))
        gaps = np.minimum(np.diff(times), MAX_GAP_S)
        return np.append(gaps, np.median(gaps))

    def emotion_shares(self) -> pandas.DataFrame:
        """Share of the session's time per top emotion of the main face, and without a face
        (``emotion, seconds, share``, every label listed, largest first)."""
        import pandas as pd

        seconds = dict.fromkeys((*self.labels, NO_FACE), 0.0)
        for record, duration in zip(self.records, self.durations()):
            face = main_face(record.faces)
            seconds[face.label if face is not None else NO_FACE] += float(duration)
        total = sum(seconds.values())
        table = pd.DataFrame({"emotion": list(seconds), "seconds": list(seconds.values())})
        table["share"] = table["seconds"] / total if total > 0 else 0.0
        return table.sort_values("seconds", ascending=False, kind="stable", ignore_index=True)

    def rows(self) -> list[dict]:
        """One row per face per frame (a frame without a face, or with an error, gets one row without a face)."""
        rows = []
        for r in self.records:
            base = {"frame": r.frame, "time_s": round(r.time_s, 3), "fps": round(r.fps, 2),
                    "latency_ms": round(r.latency_ms, 2), "error": r.error or ""}
            if not r.faces:
                rows.append(base)
            rows += [base | face_row(face) for face in r.faces]
        return rows

    def to_csv(self) -> bytes:
        """The per-frame results as CSV (columns ``frame, time_s, fps, latency_ms, error, face, x, y,
        w, h, label, confidence`` and one per emotion; probabilities as drawn, i.e. smoothed)."""
        import pandas as pd

        columns = ["frame", "time_s", "fps", "latency_ms", "error", "face", "x", "y", "w", "h", "label",
                   "confidence", *self.labels]
        table = pd.DataFrame(self.rows(), columns=columns).astype({c: "Int64" for c in ("face", "x", "y", "w", "h")})
        return table.to_csv(index=False).encode()
