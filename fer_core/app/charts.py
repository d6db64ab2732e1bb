"""Plotly figures shared by the pages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
import plotly.express as px

from fer_core.inference.draw import color_hex


def emotion_colors(labels: Iterable[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Plotly's ``color_discrete_map`` for emotions in their drawing colours; ``extra`` adds or
    overrides entries (e.g. a "no face" colour)."""
    return {label: color_hex(label) for label in labels} | dict(extra or {})


def emotion_bars(values: Mapping[str, float], value_name: str = "probability", height: int = 260,
                 colors: Mapping[str, str] | None = None):
    """Horizontal 0–100 % bars, one per emotion in its drawing colour (probabilities or time shares);
    ``colors`` overrides the colour of some bars (e.g. a "no face" bar)."""
    frame = pd.DataFrame({"emotion": list(values), value_name: list(values.values())})
    chart = px.bar(frame, x=value_name, y="emotion", orientation="h", color="emotion", range_x=[0, 1],
                   color_discrete_map=emotion_colors(values, colors), text_auto=".0%")
    chart.update_layout(showlegend=False, height=height, margin=dict(l=0, r=10, t=10, b=0), yaxis_title=None)
    return chart


def person_shares_chart(shares: pd.DataFrame, labels: Iterable[str]):
    """One horizontal bar per person, split into their share of time per emotion (``person, emotion,
    share`` from :func:`fer_core.inference.people.emotion_shares`)."""
    labels = list(labels)
    frame = shares.assign(person=shares["person"].map(lambda p: f"person {p}"))
    chart = px.bar(frame, x="share", y="person", color="emotion", orientation="h", range_x=[0, 1],
                   color_discrete_map=emotion_colors(labels), category_orders={"emotion": labels},
                   labels={"share": "share of the time seen", "person": ""}, title="Share of time per emotion")
    chart.update_layout(height=120 + 40 * frame["person"].nunique(), margin=dict(t=50, b=0), xaxis_tickformat=".0%",
                        yaxis={"categoryorder": "category descending"})
    return chart


def person_timeline_chart(over_time: pd.DataFrame, labels: Iterable[str]):
    """Each emotion's probability over time (``person, time_s, emotion, probability`` from
    :func:`fer_core.inference.people.emotions_over_time`); several persons as small multiples, one
    row each."""
    labels = list(labels)
    persons = sorted(over_time["person"].unique())
    several = len(persons) > 1
    chart = px.line(over_time, x="time_s", y="probability", color="emotion", range_y=[0, 1],
                    facet_row="person" if several else None, color_discrete_map=emotion_colors(labels),
                    category_orders={"emotion": labels, "person": persons}, labels={"time_s": "time (s)"},
                    title="Probability of each emotion over time"
                    + ("" if several else f": person {persons[0]}" if persons else ""))
    chart.for_each_annotation(lambda a: a.update(text=a.text.replace("person=", "person ")))
    chart.update_layout(height=max(320, 60 + 170 * len(persons)) if several else 360, margin=dict(t=50, b=0))
    return chart
