"""Who felt what, when: a video's rows grouped by ``person`` (the tracker's number), for the Video
page, ``fer video`` and anyone holding a ``video --csv`` or ``batch`` table.

Each analysed frame stands for the time until the next one (``every / fps`` seconds), so a person's
share of time per emotion is the share of their analysed frames with that top emotion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas


def people(table: pandas.DataFrame) -> list[int]:
    """The persons of a video table, in the order of their numbers."""
    return sorted(int(p) for p in table["person"].dropna().unique())


def person_summary(table: pandas.DataFrame, labels: Sequence[str], frame_step_s: float) -> pandas.DataFrame:
    """One row per person: ``person, first_s, last_s, frames, seconds, main_emotion``, then each
    label's share of the person's time (0–1) and its mean probability (``mean_<label>``).

    ``frames`` counts the analysed frames the person was found in; ``seconds`` is that times
    ``frame_step_s`` (the time one analysed frame stands for)."""
    import pandas as pd

    labels = list(labels)
    columns = ["person", "first_s", "last_s", "frames", "seconds", "main_emotion", *labels,
               *[f"mean_{label}" for label in labels]]
    faces = table[table["person"].notna()]
    rows = []
    for person, rows_of in faces.groupby("person", sort=True):
        shares = rows_of["label"].value_counts(normalize=True).reindex(labels, fill_value=0.0)
        means = rows_of[labels].mean()
        rows.append({"person": int(person), "first_s": float(rows_of["time_s"].min()),
                     "last_s": float(rows_of["time_s"].max()), "frames": len(rows_of),
                     "seconds": round(len(rows_of) * frame_step_s, 3), "main_emotion": shares.idxmax(),
                     **{label: float(shares[label]) for label in labels},
                     **{f"mean_{label}": float(means[label]) for label in labels}})
    return pd.DataFrame(rows, columns=columns)


def emotion_shares(summary: pandas.DataFrame, labels: Sequence[str]) -> pandas.DataFrame:
    """Long table ``person, emotion, share`` of a :func:`person_summary` (for a chart)."""
    return summary.melt(id_vars="person", value_vars=list(labels), var_name="emotion", value_name="share")


def emotions_over_time(table: pandas.DataFrame, labels: Sequence[str],
                       persons: Sequence[int] | None = None) -> pandas.DataFrame:
    """Long table ``person, time_s, emotion, probability`` of the given persons (all by default)."""
    faces = table[table["person"].notna()]
    if persons is not None:
        faces = faces[faces["person"].isin(list(persons))]
    long = faces.melt(id_vars=["person", "time_s"], value_vars=list(labels), var_name="emotion",
                      value_name="probability")
    long["person"] = long["person"].astype(int)
    return long.sort_values(["person", "time_s"], kind="stable", ignore_index=True)


def summary_lines(summary: pandas.DataFrame, labels: Sequence[str], top: int = 3) -> list[str]:
    """``person 1: 0.0–11.8 s, seen 9.6 s; happy 60%, neutral 30%, sad 10%`` per person."""
    lines = []
    for _, row in summary.iterrows():
        shares = sorted(((row[label], label) for label in labels if row[label] > 0), reverse=True)[:top]
        when = f"{row['first_s']:.1f}–{row['last_s']:.1f} s, seen {row['seconds']:.1f} s"
        lines.append(f"person {row['person']}: {when}; " + ", ".join(f"{label} {share:.0%}" for share, label in shares))
    return lines
