"""Drawing results onto images: boxes, numbers, labels, probability bars and emoji, with OpenCV.

Pure functions from a BGR ``uint8`` image to a new annotated one (the input is never modified).
Sizes follow the image size, so labels stay readable on a 4000-pixel photo and a 640×480 frame. The
emoji are drawn from circles, ellipses and lines: nothing is downloaded or shipped as a picture.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fer_core.inference.pipeline import FaceResult

# One colour per emotion (RGB), shared by the drawings and the pages' charts.
EMOTION_RGB: dict[str, tuple[int, int, int]] = {
    "angry": (214, 39, 40),
    "disgust": (44, 160, 44),
    "fear": (148, 103, 189),
    "happy": (255, 179, 0),
    "sad": (31, 119, 180),
    "surprise": (23, 190, 207),
    "neutral": (127, 127, 127),
    "not_happy": (100, 120, 150),
}
_FALLBACK_RGB = ((188, 189, 34), (227, 119, 194), (140, 86, 75), (255, 127, 14))
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
_AA = 16  # cv2.LINE_AA


def color_rgb(label: str) -> tuple[int, int, int]:
    """The colour of an emotion; labels of other schemes get a stable colour from a small palette."""
    if label in EMOTION_RGB:
        return EMOTION_RGB[label]
    return _FALLBACK_RGB[sum(map(ord, label)) % len(_FALLBACK_RGB)]


def color_hex(label: str) -> str:
    """``#rrggbb`` for plotly."""
    return "#{:02x}{:02x}{:02x}".format(*color_rgb(label))


def color_bgr(label: str) -> tuple[int, int, int]:
    r, g, b = color_rgb(label)
    return b, g, r


def drawing_scale(image: np.ndarray) -> float:
    """Font scale for an image: about 0.6 on a 640×480 frame, growing with the image."""
    return float(np.clip(max(image.shape[:2]) / 1000, 0.45, 4.0))


def _thickness(scale: float) -> int:
    return max(1, round(scale * 2))


def _blend(region: np.ndarray, overlay: np.ndarray, alpha: float) -> None:
    """``region ← alpha·overlay + (1 − alpha)·region`` in place (pixels equal in both stay as they are)."""
    import cv2

    region[:] = cv2.addWeighted(overlay, alpha, region, 1 - alpha, 0)


def draw_box_label(image: np.ndarray, box: Sequence[int], text: str, color: tuple[int, int, int], scale: float) -> None:
    """A rectangle around ``box`` and ``text`` on a filled tag above it (inside it at the image top)."""
    import cv2

    x, y, w, h = box
    thickness = _thickness(scale)
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), color, thickness, _AA)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    tag_h = th + base + 2 * thickness
    top = y - tag_h if y - tag_h >= 0 else y
    left = min(x, max(0, image.shape[1] - tw - 2 * thickness))
    cv2.rectangle(image, (left, top), (left + tw + 2 * thickness, top + tag_h), color, -1)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (left + thickness, top + th + thickness), _FONT, scale, ink, thickness, _AA)


def draw_probability_bars(image: np.ndarray, box: Sequence[int], probabilities: dict[str, float], scale: float) -> None:
    """A small panel beside ``box``: one bar per emotion, on a half-transparent dark background.

    The panel goes right of the box, or left of it where the right has no room.
    """
    import cv2

    font = scale * 0.6
    thickness = max(1, _thickness(font) // 2)
    (_, th), _ = cv2.getTextSize("Ag", _FONT, font, thickness)
    row_h = int(th * 1.8)
    name_w = cv2.getTextSize("sur", _FONT, font, thickness)[0][0] + 4
    bar_w = name_w * 2
    panel_w, panel_h = name_w + bar_w + 8, row_h * len(probabilities) + 6
    x, y, w, _ = box
    height, width = image.shape[:2]
    left = x + w + 4 if x + w + 4 + panel_w <= width else x - 4 - panel_w
    left = min(max(0, left), max(0, width - panel_w))  # inside the image even for a box past its edge
    top = min(max(0, y), max(0, height - panel_h))
    panel = image[top : top + panel_h, left : left + panel_w]
    _blend(panel, np.full_like(panel, 30), 0.6)
    for row, (label, p) in enumerate(probabilities.items()):
        base_y = top + 3 + row * row_h
        cv2.putText(image, label[:3], (left + 3, base_y + th + (row_h - th) // 2), _FONT, font, (255, 255, 255),
                    thickness, _AA)
        bar_x = left + 3 + name_w
        cv2.rectangle(image, (bar_x, base_y + 2), (bar_x + max(1, round(bar_w * p)), base_y + row_h - 2),
                      color_bgr(label), -1)


# --------------------------------------------------------------------------- emoji

_FACE_BGR = {"angry": (60, 110, 240), "disgust": (90, 200, 150), "fear": (235, 215, 170)}
_YELLOW_BGR = (40, 205, 255)
_INK = (40, 40, 40)


def _eyebrows(img: np.ndarray, c: tuple[int, int], r: int, inner_dy: float, outer_dy: float, t: int) -> None:
    """Two brows from the outer end (height ``outer_dy``·r) to the inner end (``inner_dy``·r)."""
    import cv2

    cx, cy = c
    for side in (-1, 1):
        outer = (round(cx + side * 0.55 * r), round(cy + outer_dy * r))
        inner = (round(cx + side * 0.15 * r), round(cy + inner_dy * r))
        cv2.line(img, outer, inner, _INK, t, _AA)


def _eyes(img: np.ndarray, c: tuple[int, int], r: int, wide: bool) -> None:
    import cv2

    cx, cy = c
    for side in (-1, 1):
        eye = (round(cx + side * 0.33 * r), round(cy - 0.18 * r))
        if wide:
            cv2.circle(img, eye, max(2, round(0.16 * r)), (255, 255, 255), -1, _AA)
            cv2.circle(img, eye, max(1, round(0.07 * r)), _INK, -1, _AA)
        else:
            cv2.ellipse(img, eye, (max(1, round(0.07 * r)), max(2, round(0.12 * r))), 0, 0, 360, _INK, -1, _AA)


def _mouth(img: np.ndarray, c: tuple[int, int], r: int, label: str, t: int) -> None:
    import cv2

    cx, cy = c

    def pt(dx: float, dy: float) -> tuple[int, int]:
        return round(cx + dx * r), round(cy + dy * r)

    def axes(ax: float, ay: float) -> tuple[int, int]:
        return max(1, round(ax * r)), max(1, round(ay * r))

    if label == "happy":
        cv2.ellipse(img, pt(0, 0.15), axes(0.5, 0.4), 0, 10, 170, _INK, t, _AA)
    elif label == "sad":
        cv2.ellipse(img, pt(0, 0.62), axes(0.38, 0.22), 0, 200, 340, _INK, t, _AA)
    elif label == "angry":
        cv2.ellipse(img, pt(0, 0.6), axes(0.3, 0.12), 0, 180, 360, _INK, t, _AA)
    elif label == "surprise":
        cv2.ellipse(img, pt(0, 0.45), axes(0.17, 0.24), 0, 0, 360, _INK, -1, _AA)
    elif label == "fear":
        cv2.ellipse(img, pt(0, 0.47), axes(0.3, 0.14), 0, 0, 360, _INK, -1, _AA)
        cv2.line(img, pt(-0.2, 0.47), pt(0.2, 0.47), (255, 255, 255), max(1, t // 2), _AA)
    elif label == "disgust":
        zigzag = np.array([pt(-0.4 + 0.16 * i, 0.45 + (0.07 if i % 2 else -0.07)) for i in range(6)], np.int32)
        cv2.polylines(img, [zigzag], False, _INK, t, _AA)
    else:  # neutral, and any label without a face of its own
        cv2.line(img, pt(-0.32, 0.45), pt(0.32, 0.45), _INK, t, _AA)


def draw_emoji(image: np.ndarray, center: tuple[int, int], radius: int, label: str, alpha: float = 0.6) -> None:
    """An emoji for ``label`` (circle face, eyes, brows, mouth), alpha-blended onto ``image`` in place.

    It is drawn on a copy of the square around it only, so a large photo is not copied per face.
    """
    import cv2

    height, width = image.shape[:2]
    x0, y0 = max(0, center[0] - radius - 2), max(0, center[1] - radius - 2)
    x1, y1 = min(width, center[0] + radius + 3), min(height, center[1] + radius + 3)
    region = image[y0:y1, x0:x1]
    if region.size == 0:  # the emoji lies wholly outside the image: nothing of it would show
        return
    overlay = region.copy()
    center = (center[0] - x0, center[1] - y0)
    t = max(1, round(radius / 12))
    cv2.circle(overlay, center, radius, _FACE_BGR.get(label, _YELLOW_BGR), -1, _AA)
    cv2.circle(overlay, center, radius, _INK, max(1, t // 2), _AA)
    _eyes(overlay, center, radius, wide=label in ("surprise", "fear"))
    if label == "angry":
        _eyebrows(overlay, center, radius, inner_dy=-0.32, outer_dy=-0.52, t=t)
    elif label in ("sad", "fear"):
        _eyebrows(overlay, center, radius, inner_dy=-0.55, outer_dy=-0.4, t=t)
    elif label == "surprise":
        _eyebrows(overlay, center, radius, inner_dy=-0.55, outer_dy=-0.55, t=t)
    elif label == "disgust":
        _eyebrows(overlay, center, radius, inner_dy=-0.35, outer_dy=-0.45, t=t)
    _mouth(overlay, center, radius, label, t)
    _blend(region, overlay, alpha)


# --------------------------------------------------------------------------- all faces of an image


def annotate(image_bgr: np.ndarray, results: Sequence[FaceResult], emoji: bool = False,
             bars: bool = False) -> np.ndarray:
    """A copy of the image with each face's box, number, top label and confidence drawn on it.

    ``emoji`` lays a half-transparent emoji of the top emotion over each face; ``bars`` adds a small
    panel of per-emotion probability bars beside each face.
    """
    import cv2

    image = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR) if image_bgr.ndim == 2 else image_bgr.copy()
    scale = drawing_scale(image)
    for result in results:
        x, y, w, h = result.box
        if emoji:
            draw_emoji(image, (x + w // 2, y + h // 2), max(4, int(min(w, h) * 0.45)), result.label)
        draw_box_label(image, result.box, f"{result.index + 1} {result.label} {result.confidence:.0%}",
                       color_bgr(result.label), scale)
        if bars:
            draw_probability_bars(image, result.box, result.probabilities, scale)
    return image
