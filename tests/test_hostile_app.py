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
