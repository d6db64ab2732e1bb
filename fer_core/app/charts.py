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
