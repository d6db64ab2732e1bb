"""Streamlit glue shared by the pages: the page list, cached loaders, the sidebar model picker and
the guard that turns a page's exception into a logged traceback and a message.

This is the only module of ``fer_core`` that imports Streamlit; nothing else in the package imports it.

The page scripts live in ``app_pages/``, never in a folder called ``pages/`` beside ``streamlit_app.py``:
Streamlit (1.67) sets the class flag ``PagesManager.uses_pages_directory`` from ``Path("pages").exists()``
when the server's first session starts, and only a call of ``st.navigation`` clears it. While it is set,
the script runner runs its old file-based multipage mode instead of our router, so if a fresh server's
first request were a deep link (``/Video``, a bookmark), that page would run without the router, with a
"streamlit app" entry in the sidebar and without :func:`run_page_guarded`, for that visitor and every
later one. With no ``pages/`` folder the flag starts false and the router owns every URL
(tests/test_hostile_browser.py opens a fresh server at ``/Video`` first).
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from fer_core.data import DataError, LoadResult, load_dataset
from fer_core.data.roots import SAMPLE_DATA, Dataset, data_roots, find_datasets, resolve_under_roots
from fer_core.model_card import PROJECT_ROOT, TTA_MODES, ModelCard, default_model_path, list_models, model_label
from fer_core.settings import Use, default_detector

PAGES_DIR = PROJECT_ROOT / "app_pages"  # not "pages": see the module's docstring
LOGGER = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# Characters that start Markdown anywhere in a line: emphasis, code, links and images ([ ]), HTML and
# autolinks (< >, and ``:`` of ``https://``), tables, strikethrough, LaTeX ($), Streamlit's colour
# directives and emoji codes (``:red[…]``, ``:smile:``), entities (&) and the escape itself.
MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]<>#|~$:&])")
WWW_AUTOLINK = re.compile(r"(?i)(?<=www)\.")  # GFM links ``www.example.org`` without a scheme
LIST_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))")  # a list item or heading rule at the start


def plain(text: object) -> str:
    """``text`` escaped for Streamlit's Markdown (``st.markdown``, captions, labels, ``st.error``…):
    shown exactly as written, never as a link, an image, a colour directive, LaTeX or an emoji code.

    Every name a visitor chooses (an uploaded file's name, above all) goes through it: a file called
    ``[click](https://evil.example)`` or ``![x](https://tracker.example/p.png)`` stays that text.
    Line breaks become spaces so a name cannot start a Markdown block of its own.
    """
    escaped = MARKDOWN_INLINE.sub(r"\\\1", " ".join(str(text).splitlines()))
    escaped = WWW_AUTOLINK.sub(r"\\.", escaped)
    return LIST_START.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2).isdigit() else "\\" + m.group(2)),
                          escaped)


@dataclass(frozen=True)
class PageInfo:
    """One page of the app: its script in ``app_pages/``, how the sidebar names it, and what it is for."""

    file: str
    title: str
    icon: str
    purpose: str

    @property
    def path(self) -> str:
        """The script relative to the app's root, as ``st.Page`` and ``st.page_link`` take it."""
        return f"{PAGES_DIR.name}/{self.file}"

    @property
    def url_path(self) -> str:
        """The page's address after the server's root (``Live camera`` → ``/Live_camera``)."""
        return self.title.replace(" ", "_")


HOME_PAGE = PageInfo("0_Home.py", "Home", ":material/home:", "what the app does and which model it uses")
PAGES = (
    PageInfo("1_Dataset.py", "Dataset", ":material/dataset:",
             "counts, class balance, sample and mean faces of FER2013"),
    PageInfo("2_Training.py", "Training", ":material/monitoring:", "learning curves and metrics of the training runs"),
    PageInfo("3_Upload.py", "Upload", ":material/add_photo_alternate:", "detect and classify the faces in your photos"),
    PageInfo("4_Live_camera.py", "Live camera", ":material/videocam:", "classify faces from your webcam as you move"),
    PageInfo("5_Video.py", "Video", ":material/movie:", "emotions over time in a video file"),
    PageInfo("6_Explain.py", "Explain", ":material/psychology:", "Grad-CAM and feature maps: why the model decided"),
)


def existing_pages() -> list[PageInfo]:
    """The pages after Home whose script exists (a page not written yet is neither routed nor linked)."""
    return [page for page in PAGES if (PAGES_DIR / page.file).is_file()]


def log_to_stderr() -> None:
    """Send ``fer_core``'s warnings and errors, tracebacks included, to the server's stderr.

    Streamlit configures only its own loggers; without this a frame error of the live camera would
    reach stderr through Python's last-resort handler, without time or logger name. Idempotent:
    every rerun of the app calls it.
    """
    package = logging.getLogger("fer_core")
    if not any(getattr(handler, "fer_core_stderr", False) for handler in package.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.fer_core_stderr = True
        package.addHandler(handler)


def run_page_guarded(page) -> None:
    """Run a ``st.navigation`` page; if it raises, log the traceback and say in words what failed.

    The visitor sees which page failed and the exception's type, never its message or traceback
    (either may carry server paths or data: ``client.showErrorDetails = "none"`` in
    ``.streamlit/config.toml`` does the same for whatever escapes this guard); the server's log gets
    the traceback with the page's name. The next rerun (or another page) starts afresh: one page's
    failure costs nothing else. Streamlit's own control flow (``st.stop``, ``st.rerun``,
    ``st.switch_page``) raises exceptions outside :class:`Exception`, so it passes through untouched.
    """
    try:
        page.run()
    except Exception as exc:  # noqa: BLE001 - whatever a page raises is reported, never re-raised
        LOGGER.exception("page %r failed", page.title)
        st.error(f"The {plain(page.title)} page failed ({type(exc).__name__}). The error was logged on the server; "
                 "change the input or reload the page to try again.")


def offered_datasets() -> list[Dataset]:
    """The datasets under the data roots (:mod:`fer_core.data.roots`), the shipped sample first."""
    return datasets_under(tuple(data_roots()))


@st.cache_data(ttl=60, show_spinner=False)
def datasets_under(roots: tuple[Path, ...]) -> list[Dataset]:
    """:func:`offered_datasets` for these roots, looked for again after a minute (a dataset copied
    under a root appears without a restart)."""
    datasets = find_datasets(roots)
    return sorted(datasets, key=lambda dataset: (dataset.path != SAMPLE_DATA, dataset.label))


@st.cache_data(show_spinner="Loading faces…", max_entries=4)
def cached_dataset(path: str, skip_bad_rows: bool = True) -> LoadResult:
    """Faces of a CSV or folder tree, cached per path (the loader itself caches on disk too)."""
    return load_dataset(path, skip_bad_rows=skip_bad_rows)


SAMPLE_DATASET = Dataset(SAMPLE_DATA, "sample")


def load_dataset_or_error(dataset: Dataset) -> LoadResult | None:
    """Load an offered dataset (or the shipped sample) through the cache, checked once more against
    the data roots; show a clear error (the dataset named by its label, never by the server's path)
    and return ``None`` on bad input."""
    try:
        return cached_dataset(str(resolve_under_roots(dataset.path, [*data_roots(), SAMPLE_DATA])))
    except (DataError, OSError) as exc:
        st.error(f"Cannot read the data: {dataset.shown(str(exc))}")
        return None


@st.cache_resource(show_spinner="Loading the model…")
def cached_recognizer(model_path: str):
    """One :class:`~fer_core.inference.recognizer.EmotionRecognizer` per model file, shared by all sessions."""
    from fer_core.inference.recognizer import EmotionRecognizer

    return EmotionRecognizer(model_path)


def model_picker(key: str = "model", default: Path | None = None) -> Path | None:
    """Sidebar selector over ``models/*.keras``, preselecting ``default`` (the accurate model unless
    told otherwise); ``None`` with a message if there is none."""
    models = list_models()
    default = default or default_model_path()
    if default.is_file() and default not in models:
        models.insert(0, default)
    if not models:
        st.sidebar.warning("No model in models/. Train one: python -m fer_core train --help")
        return None
    index = models.index(default) if default in models else 0
    choice = st.sidebar.selectbox("Model", models, index=index, format_func=model_label, key=key,
                                  help="Accurate: the default for photos, videos and explanations. Fast: the live "
                                       "camera's default. Figures: validation accuracy from each model's card.")
    return Path(choice)


def smile_view_toggle(key: str = "smile_view") -> str | None:
    """Sidebar toggle for the smile view (happy or not, at the threshold chosen on validation):
    the scheme name to pass to :func:`recognizer_or_error`, or ``None`` for the model's own classes."""
    on = st.sidebar.toggle("Smile view (happy or not)", value=False, key=key,
                           help="The model's probabilities summed into happy vs. not happy, decided at the "
                                "threshold chosen on the validation faces (the model card's views).")
    return "smile" if on else None


def tta_toggle(model_path: Path | None, value: bool) -> bool:
    """Sidebar toggle for test-time augmentation; its help names the views the chosen model's card
    averages (the mirror image, or ten crops) and what they cost."""
    card = ModelCard.load(model_path) if model_path is not None and model_path.is_file() else None
    if card is not None and card.tta == "none":
        return st.sidebar.toggle("Test-time augmentation", value=value, disabled=True,
                                 help="This model classifies one view per face (its card sets no test-time "
                                      "augmentation: an ensemble, its members' average does that work).")
    views = (card.data.get("tta_description") if card else None) or TTA_MODES["hflip"]
    work = "ten times" if card is not None and card.tta == "ten_crop" else "twice"
    return st.sidebar.toggle("Test-time augmentation", value=value,
                             help=f"Classify several views of each face and average them ({views}): a little more "
                                  f"accurate, {work} the classifier's work.")


def detector_picker(use: Use, key: str = "detector") -> str:
    """Sidebar choice of the face detector: its name (:data:`fer_core.inference.detect.DETECTOR_NAMES`),
    starting at the default of ``use`` (:data:`fer_core.settings.DEFAULT_DETECTORS`). A detector that
    cannot run here (its weights missing, say) is reported and Haar is used instead."""
    from fer_core.inference.detect import DETECTOR_NAMES, DetectorError, detector_for

    name = st.sidebar.selectbox(
        "Face detector", DETECTOR_NAMES, index=DETECTOR_NAMES.index(default_detector(use)), key=key,
        format_func=lambda n: DETECTOR_LABELS.get(n, n),
        help="YuNet, a small CNN, finds faces of every size, tilted, turned and unevenly lit, with few false "
             "boxes; BlazeFace finds more tilted faces near the camera but misses the small faces of a group "
             "photo; the Haar cascade (2001) finds frontal faces only. docs/detectors.md compares them.")
    try:
        detector_for(name, "frame" if use == "live" else "photo")
    except DetectorError as exc:
        st.sidebar.error(f"The {name} detector cannot run: {exc}. Using haar.")
        return "haar"
    return name


DETECTOR_LABELS = {"yunet": "YuNet (CNN)", "blazeface": "BlazeFace (CNN)", "haar": "Haar cascade"}


def recognizer_or_error(model_path: Path | None, scheme: str | None = None):
    """The cached recognizer (seen through ``scheme`` when given, e.g. ``smile``), or ``None`` after
    showing why it could not be loaded."""
    if model_path is None:
        return None
    try:
        return cached_recognizer(str(model_path)).for_scheme(scheme)
    except (OSError, ValueError) as exc:
        st.error(f"Cannot load the model {model_path}: {exc}")
        return None


def model_summary(model_path: Path) -> dict:
    """The parts of a model card the pages show in a caption."""
    card = ModelCard.load(model_path)
    return {"name": card.name, "labels": list(card.labels), "accuracy": card.validation.get("accuracy")}


def webrtc_secrets() -> dict:
    """The ``[webrtc]`` table of Streamlit's secrets (ICE servers for the live camera); empty when
    there is no secrets file or no such table."""
    try:
        return dict(st.secrets.get("webrtc") or {})
    except FileNotFoundError:  # Streamlit raises StreamlitSecretNotFoundError, a FileNotFoundError
        return {}
