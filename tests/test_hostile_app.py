"""A hostile visitor of the dashboard, run headless with Streamlit's AppTest: nothing outside the data
roots reaches a page, names are shown as text, and no upload takes more than its budget.

A folder is planted outside the roots (a face photo under ``train/happy/``, a secrets file, a CSV
that is not FER2013) and pushed at the Dataset page in every form a path can take; no page may show
a planted name or any of its content.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import write_clip
from streamlit.testing.v1 import AppTest

from fer_core.data.roots import OUTSIDE_MESSAGE, OutsideRoots, data_roots, find_datasets, resolve_under_roots
from fer_core.model_card import PROJECT_ROOT

DATASET = str(PROJECT_ROOT / "app_pages" / "1_Dataset.py")
SAMPLE_FACE = next((PROJECT_ROOT / "data" / "sample" / "validation" / "happy").glob("*.jpg"))
PLANTED_WORDS = ("planted", "hunter2", "sk-live", "db_password", "api_key")


@pytest.fixture
def planted(tmp_path) -> Path:
    """Outside every root: a face under train/happy/, a secrets file and a CSV of credentials."""
    folder = tmp_path / "planted_secrets"
    (folder / "train" / "happy").mkdir(parents=True)
    shutil.copy(SAMPLE_FACE, folder / "train" / "happy" / "planted_face.jpg")
    (folder / "secrets.toml").write_text('[webrtc]\npassword = "hunter2"\n')
    (folder / "planted_keys.csv").write_text("api_key,db_password\nsk-live-123,hunter2\n")
    return folder


@pytest.fixture
def root(tmp_path, monkeypatch, planted) -> Path:
    """The only data root: one small image dataset and a symlink to the planted folder."""
    root = tmp_path / "roots" / "offered"
    (root / "faces" / "validation" / "happy").mkdir(parents=True)
    shutil.copy(SAMPLE_FACE, root / "faces" / "validation" / "happy" / "one.jpg")
    (root / "shortcut").symlink_to(planted, target_is_directory=True)
    (root / "keys.csv").symlink_to(planted / "planted_keys.csv")
    monkeypatch.setenv("FER_DATA_ROOTS", str(root))
    return root


def path_forms(planted: Path, root: Path) -> dict[str, str]:
    """The planted folder and its files, written every way a path can be."""
    forms = {}
    for name, target in (("folder", planted), ("csv", planted / "planted_keys.csv"),
                         ("secrets", planted / "secrets.toml")):
        relative_part = target.relative_to(planted)
        forms[f"{name} absolute"] = str(target)
        forms[f"{name} relative"] = os.path.relpath(target, Path.cwd())
        forms[f"{name} dot-dot"] = f"{root}/../../planted_secrets/{relative_part}".removesuffix("/.")
        forms[f"{name} symlink"] = f"{root}/shortcut/{relative_part}".removesuffix("/.")
    forms["symlinked csv"] = str(root / "keys.csv")
    return forms


def everything_shown(at: AppTest) -> str:
    """Every element of the page as text: values, labels, options, captions, dataframes' bytes."""
    texts, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        if getattr(node, "proto", None) is not None:
            texts.append(str(node.proto))
        children = getattr(node, "children", {})
        stack.extend(children.values() if isinstance(children, dict) else children)
    return "\n".join(texts)


def assert_nothing_planted(at: AppTest) -> None:
    shown = everything_shown(at)
    leaked = [word for word in PLANTED_WORDS if word in shown]
    assert not leaked, f"the page shows {leaked}"
    assert not at.exception, [e.message for e in at.exception]


def test_every_form_of_a_planted_path_is_refused_with_one_message(planted, root):
    roots = data_roots()
    assert roots == [root.resolve()]
    for form, path in path_forms(planted, root).items():
        with pytest.raises(OutsideRoots) as refused:
            resolve_under_roots(path, roots)
        assert str(refused.value) == OUTSIDE_MESSAGE, form
    missing = root.parent / "no_such_folder"
    with pytest.raises(OutsideRoots, match=OUTSIDE_MESSAGE):  # the same words: no hint that it does not exist
        resolve_under_roots(missing, roots)
    assert resolve_under_roots(root / "faces" / ".." / "faces", roots) == (root / "faces").resolve()


def test_only_datasets_under_the_roots_are_offered(planted, root):
    offered = find_datasets(data_roots())
    assert [(d.path, d.label) for d in offered] == [((root / "faces").resolve(), "offered/faces")]


def test_the_dataset_page_offers_no_path_field_and_nothing_planted(planted, root):
    at = AppTest.from_file(DATASET, default_timeout=60).run()
    assert not at.text_input, "no free path field"
    assert at.selectbox(key="dataset").options == ["offered/faces"]
    assert_nothing_planted(at)
    assert {m.label: m.value for m in at.metric}["Faces loaded"] == "1"


def test_forged_widget_state_reads_nothing_planted(planted, root):
    """The selectbox's key, and the keys of the path field and source radio the page once had."""
    for form, path in path_forms(planted, root).items():
        at = AppTest.from_file(DATASET, default_timeout=60)
        for key in ("dataset", "data_path", "source"):
            at.session_state[key] = path
        at.run()
        assert_nothing_planted(at)
        assert at.selectbox(key="dataset").value == "offered/faces", form


def test_a_dataset_forced_past_the_selectbox_is_refused_by_the_loader(planted, root):
    """The loader checks the roots again, whatever Dataset reaches it."""

    def forced_page(path: str) -> None:
        from pathlib import Path

        from fer_core.app.ui import load_dataset_or_error
        from fer_core.data.roots import Dataset

        load_dataset_or_error(Dataset(Path(path), "forced"))

    for form, path in path_forms(planted, root).items():
        at = AppTest.from_function(forced_page, args=(path,), default_timeout=60).run()
        assert_nothing_planted(at)
        assert [e.value for e in at.error] == [f"Cannot read the data: {OUTSIDE_MESSAGE}"], form


# --------------------------------------------------------------------------- names are text, errors are words

MARKDOWN_NAMES = ["[click](https://evil.example/x).png", "![pixel](https://tracker.example/p.png).png",
                  ":red[alarm] $x^2$ <b>bold</b> www.evil.example **x**.png", "- list\n# heading.png"]


def test_plain_leaves_no_markdown_construct():
    from fer_core.app.ui import plain

    for name in MARKDOWN_NAMES:
        escaped = plain(name)
        assert "\n" not in escaped
        for construct in ("[", "](", "![", ":red[", "<b>", "$x", "**", "www.evil"):
            assert construct not in escaped.replace("\\" + construct[0], ""), (name, escaped)
    assert plain("holiday photo (1).jpg") == "holiday photo (1).jpg", "ordinary names stay readable"


@pytest.fixture
def tiny_model_env(monkeypatch, tiny_model_path):
    monkeypatch.setenv("FER_MODEL", str(tiny_model_path))


def wall_png(side: int = 64) -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".png", np.full((side, side, 3), 100, np.uint8))[1].tobytes()


def test_upload_page_shows_markdown_names_as_text(tiny_model_env):
    from fer_core.app.ui import plain

    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages" / "3_Upload.py"), default_timeout=120).run()
    at.file_uploader[0].set_value([(name, wall_png(), "image/png") for name in MARKDOWN_NAMES]).run()
    assert not at.exception, [e.message for e in at.exception]
    shown = [*(w.value for w in at.warning), *(s.value for s in at.subheader), *(c.value for c in at.caption)]
    for name in MARKDOWN_NAMES:
        assert any(plain(name) in text for text in shown), name
        assert not any(name in text for text in shown), f"{name!r} reached Markdown unescaped"


def test_a_failing_page_shows_no_message_or_traceback():
    def failing_app():
        import streamlit as st

        from fer_core.app.ui import run_page_guarded

        def video():
            raise OSError("/srv/secret/path/annotated.mp4: No space left on device")

        run_page_guarded(st.navigation([st.Page(video, title="Video")]))

    at = AppTest.from_function(failing_app, default_timeout=60).run()
    assert [e.value for e in at.error] == ["The Video page failed (OSError). The error was logged on the server; "
                                           "change the input or reload the page to try again."]
    assert "secret" not in everything_shown(at) and not at.exception


def test_streamlit_shows_no_error_details():
    import tomllib

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"


# --------------------------------------------------------------------------- budgets

UPLOAD = str(PROJECT_ROOT / "app_pages" / "3_Upload.py")
VIDEO = str(PROJECT_ROOT / "app_pages" / "5_Video.py")


def png_of(width: int, height: int) -> bytes:
    """A real PNG of one gray level: a few hundred KB however many pixels it has."""
    import cv2
    import numpy as np

    return cv2.imencode(".png", np.full((height, width, 3), 120, np.uint8))[1].tobytes()


@pytest.fixture(scope="module")
def photo_bomb() -> bytes:
    """48 megapixels (8000 × 6000) in a small file, as the issue's photo bomb."""
    return png_of(8000, 6000)


def server_budgets(monkeypatch, **changes):
    """Replace the server's budgets (read once at start) for this test."""
    import dataclasses

    import fer_core.app.limits as limits

    budgets = dataclasses.replace(limits.SERVER_BUDGETS, **changes)
    monkeypatch.setattr(limits, "SERVER_BUDGETS", budgets)
    return budgets


def test_a_photo_over_the_pixel_budget_is_refused_from_its_header(photo_bomb):
    import tracemalloc

    from fer_core.inference.images import ImageTooLarge, decode_image
    from fer_core.settings import Budgets

    assert len(photo_bomb) < 1_000_000
    tracemalloc.start()
    with pytest.raises(ImageTooLarge, match=r"8000×6000 pixels is too large \(limit 20 megapixels, "
                                            r"FER_MAX_IMAGE_PIXELS\)"):
        decode_image(photo_bomb, "bomb.png", Budgets(max_image_pixels=20_000_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB allocated: the image was decoded"
    with pytest.raises(ImageTooLarge, match="FER_MAX_UPLOAD_BYTES"):
        decode_image(photo_bomb, "bomb.png", Budgets(max_upload_bytes=1000))


def test_upload_page_refuses_a_photo_bomb_over_budget_and_names_extra_files(tiny_model_env, monkeypatch,
                                                                            photo_bomb):
    server_budgets(monkeypatch, max_image_pixels=20_000_000, max_files_per_upload=2)
    files = [("bomb.png", photo_bomb, "image/png"), ("wall.png", wall_png(), "image/png"),
             ("[extra](https://x.example).png", wall_png(), "image/png")]
    at = AppTest.from_file(UPLOAD, default_timeout=120).run()
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.warning[0].value.startswith("An upload holds at most 2 files (FER_MAX_FILES_PER_UPLOAD); these 1 "
                                          r"were not analysed: \[extra\](https\://x.example).png")
    assert any("bomb.png" in e.value and "too large" in e.value for e in at.error)
    assert at.caption[-1].value == "2 files: 1 analysed, 1 could not be used."


@pytest.mark.slow
def test_upload_page_analyses_a_photo_bomb_within_budget_and_caches_it_within_its_bound(tiny_model_env,
                                                                                        monkeypatch, photo_bomb):
    """48 MP is under the default 50 MP: analysed, shown as its preview, kept in the cache only if it fits."""
    import fer_core.app.limits as limits
    from fer_core.app.bounded_cache import BoundedTTLCache

    cache = BoundedTTLCache(200 * 2**20, 600, sweep=False)
    monkeypatch.setattr(limits, "PHOTO_CACHE", cache)
    at = AppTest.from_file(UPLOAD, default_timeout=300).run()
    at.file_uploader[0].set_value(("bomb.png", photo_bomb, "image/png")).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "No face found in bomb.png" in at.warning[0].value
    assert len(cache) == 1 and cache.total_bytes <= cache.max_bytes  # 144 MB decoded: it fits 200 MB
    small = BoundedTTLCache(100 * 2**20, 600, sweep=False)
    monkeypatch.setattr(limits, "PHOTO_CACHE", small)
    at.sidebar.toggle[0].set_value(True).run()
    assert not at.exception and len(small) == 0, "larger than the whole bound: not kept"


def test_the_cache_keeps_its_byte_bound_and_expires_unused_entries():
    from fer_core.app.bounded_cache import BoundedTTLCache

    now = [0.0]
    cache = BoundedTTLCache(100, ttl_s=10, clock=lambda: now[0], sweep=False)
    for key in "abc":
        cache.put(key, key.upper(), 40)
    assert cache.get("a") is None and cache.total_bytes == 80, "the least recently used went first"
    cache.get("b")
    cache.put("d", "D", 40)
    assert cache.get("c") is None and cache.get("b") == "B"
    cache.put("huge", "H", 101)
    assert cache.get("huge") is None and cache.total_bytes == 80
    now[0] = 9.0
    assert cache.get("b") == "B"  # used at 9: lives until 19
    now[0] = 15.0
    cache.expire()
    assert len(cache) == 1 and cache.get("b") == "B" and cache.total_bytes == 40
    now[0] = 30.0
    cache.expire()
    assert len(cache) == 0 and cache.total_bytes == 0


def test_the_cache_sweep_frees_memory_with_no_visitor():
    import time

    from fer_core.app.bounded_cache import BoundedTTLCache

    cache = BoundedTTLCache(100, ttl_s=0.2)
    cache.put("photo", "P", 10)
    deadline = time.monotonic() + 5
    while len(cache) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(cache) == 0, "expired without any get or put"


def test_slots_bound_the_analyses_running_at_once():
    import threading
    import time

    from fer_core.app.limits import AnalysisSlots, ServerBusy

    slots = AnalysisSlots(2)

    def analyse():
        with slots.slot():
            time.sleep(0.2)

    threads = [threading.Thread(target=analyse) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slots.most_running == 2 and slots.running == 0
    with slots.slot(), slots.slot():
        with pytest.raises(ServerBusy, match="FER_MAX_CONCURRENT_ANALYSES"):
            with slots.slot(wait_s=0.1):
                pass


def test_upload_page_says_the_server_is_busy_when_every_slot_is_taken(tiny_model_env, monkeypatch):
    import fer_core.app.limits as limits
    from fer_core.app.bounded_cache import BoundedTTLCache

    busy = limits.AnalysisSlots(1)
    monkeypatch.setattr(limits, "ANALYSIS_SLOTS", busy)
    monkeypatch.setattr(limits, "PHOTO_CACHE", BoundedTTLCache(2**20, 600, sweep=False))  # nothing cached yet
    monkeypatch.setattr(limits, "SLOT_WAIT_S", 0.1)
    at = AppTest.from_file(UPLOAD, default_timeout=120).run()
    with busy.slot():
        at.file_uploader[0].set_value(("wall.png", wall_png(), "image/png")).run()
    assert not at.exception
    assert at.error[0].value.startswith("Cannot analyse wall.png now: the server is analysing 1 files")


# --------------------------------------------------------------------------- video budgets


def test_a_video_over_the_frame_budget_is_refused_from_its_header(tmp_path, tiny_recognizer):
    from fer_core.inference.video import VideoTooLarge, analyze_video
    from fer_core.settings import Budgets

    clip = write_clip(tmp_path / "bomb.mp4", 2000, 2)
    with pytest.raises(VideoTooLarge, match=r"bomb.mp4: frames of 2000×2000 pixels are too large \(limit 2 "
                                            r"megapixels, FER_MAX_FRAME_PIXELS\)"):
        analyze_video(clip, tiny_recognizer, budgets=Budgets(max_frame_pixels=2_000_000))


def test_frames_and_time_are_counted_as_decoded_and_the_rows_kept(tmp_path, tiny_recognizer):
    """A clip that claims 1000 fps: the frame budget counts what is decoded, not what the rate promises."""
    from fer_core.inference.video import analyze_video
    from fer_core.settings import Budgets

    clip = write_clip(tmp_path / "fast.mp4", 64, 30, fps=1000)
    result = analyze_video(clip, tiny_recognizer, every=1, budgets=Budgets(max_video_frames=12))
    assert result.frames_read == 12 and result.frames_analyzed == 12 and result.error is None
    assert result.cut_short == "stopped at frame 12: 12 frames decoded, the limit (FER_MAX_VIDEO_FRAMES)"
    slow = analyze_video(clip, tiny_recognizer, every=1, budgets=Budgets(max_video_seconds=1e-9))
    assert slow.frames_read == 1 and slow.cut_short.startswith("stopped at frame 1: 0 s spent, the limit")
    whole = analyze_video(clip, tiny_recognizer, every=1)
    assert whole.frames_read == 30 and whole.cut_short is None


def test_video_page_refuses_a_video_bomb_and_names_the_budget(tiny_model_env, monkeypatch, tmp_path):
    server_budgets(monkeypatch, max_frame_pixels=2_000_000)
    clip = write_clip(tmp_path / "bomb.mp4", 2000, 2).read_bytes()
    at = AppTest.from_file(VIDEO, default_timeout=120).run()
    at.file_uploader[0].set_value(("bomb.mp4", clip, "video/mp4")).run()
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert "frames of 2000×2000 pixels are too large" in at.error[0].value
    assert "fer_video_" not in at.error[0].value, "no server folder in the message"


def test_video_page_shows_where_a_budget_cut_the_analysis_short(tiny_model_env, monkeypatch, tmp_path):
    server_budgets(monkeypatch, max_video_frames=5)
    clip = write_clip(tmp_path / "long.mp4", 64, 12).read_bytes()
    at = AppTest.from_file(VIDEO, default_timeout=120).run()
    at.file_uploader[0].set_value(("long.mp4", clip, "video/mp4")).run()
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.warning[0].value.startswith("The analysis stopped at frame 5\\: 5 frames decoded, the limit")
    assert at.success[0].value.startswith("5 frames read")
