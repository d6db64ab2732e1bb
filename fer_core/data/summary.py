"""A loaded dataset as text: counts per split × class, then what was skipped."""

from __future__ import annotations

import io

from fer_core.data.faces import LoadResult
from fer_core.labels import FER_LABELS
from fer_core.outputs import display_path


def summary_text(result: LoadResult) -> str:
    """Counts per split × class as an aligned table, then what was skipped."""
    counts = result.counts()
    out = io.StringIO()
    header = f"{'split':<12}" + "".join(f"{name:>9}" for name in FER_LABELS) + f"{'total':>9}"
    out.write(header + "\n")
    for split, per_class in counts.items():
        out.write(f"{split:<12}" + "".join(f"{n:>9}" for n in per_class.values()) + f"{sum(per_class.values()):>9}\n")
    out.write(f"{len(result.data)} faces")
    if result.skipped:
        out.write(f"; {len(result.skipped)} skipped:\n")
        for s in result.skipped:
            out.write(f"  {display_path(s.source)}: {s.reason}\n")
    else:
        out.write(", nothing skipped\n")
    return out.getvalue()
