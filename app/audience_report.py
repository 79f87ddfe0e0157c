"""The audience section of the HTML report: how k was chosen (elbow and silhouette), the
map of authors coloured by segment, and each segment's profile and recommendations.

Figures are PNG images (base64) like the rest of the report, which has no script.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from insights.audiences import Segmentation


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def audience_section(segmentation: Segmentation) -> dict[str, Any]:
    """What the report's template shows of a segmentation (call under the report's lock:
    pyplot keeps global state)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figures: dict[str, str] = {}
    try:
        curve = segmentation.metrics.get("k_curve", [])
        if curve:
            fig, left = plt.subplots(figsize=(7, 3.4))
            ks = [c["k"] for c in curve]
            left.plot(ks, [c["inertia"] for c in curve], marker="o", color="#4f46e5")
            left.set_xlabel("k (segments)")
            left.set_ylabel("inertia (elbow)", color="#4f46e5")
            right = left.twinx()
            right.plot(ks, [c["silhouette"] for c in curve], marker="s", color="#dc2626")
            right.set_ylabel("silhouette", color="#dc2626")
            left.axvline(segmentation.metrics["k"], color="#111827", linestyle="--", linewidth=1)
            left.set_title("Choosing the number of segments")
            figures["elbow"] = _png(fig)
        points = segmentation.map.get("points", [])
        if points:
            fig, ax = plt.subplots(figsize=(7, 5))
            for segment_id in segmentation.ids:
                mine = [p for p in points if p["segment"] == segment_id]
                ax.scatter(
                    [p["x"] for p in mine],
                    [p["y"] for p in mine],
                    s=9,
                    alpha=0.6,
                    label=f"{segment_id}: {segmentation.segments[segment_id]['name'][:40]}",
                )
            explained = segmentation.map.get("explained", [])
            ax.set_xlabel(f"component 1 ({explained[0]:.0%})" if explained else "component 1")
            ax.set_ylabel(f"component 2 ({explained[1]:.0%})" if len(explained) > 1 else "")
            ax.set_title(f"{len(points)} authors on the first two principal components")
            ax.legend(fontsize=7, loc="best")
            figures["map"] = _png(fig)
    finally:
        plt.close("all")
    return {
        "version": segmentation.version,
        "metrics": segmentation.metrics,
        "segments": [segmentation.segments[i] for i in segmentation.ids],
        "figures": figures,
    }
