"""The router (streamlit_app.py), the Home page and the Dataset page, run headless with Streamlit's AppTest."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

from streamlit.testing.v1 import AppTest

from fer_core.model_card import PROJECT_ROOT

HOME = str(PROJECT_ROOT / "streamlit_app.py")
DATASET = str(PROJECT_ROOT / "app_pages" / "1_Dataset.py")
SAMPLE = PROJECT_ROOT / "data" / "sample"


def run_page(script: str) -> AppTest:
    at = AppTest.from_file(script, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def markdown_texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_home_page_without_model_says_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "missing.keras"))
    at = run_page(HOME)
    assert len(at.title) == 1
    assert "missing.keras" in at.warning[0].value
    assert at.code[0].value == "python -m fer_core train --help"


def test_home_page_names_the_model_from_its_card(monkeypatch, tmp_path):
    model = tmp_path / "smile_net.keras"
    model.write_bytes(b"not read by the home page")
    card = {"name": "smile net",
            "scheme": {"name": "smile", "labels": ["not_happy", "happy"], "fer_to_class": [0, 0, 0, 1, 0, 0, 0]},
            "metrics": {"validation": {"accuracy": 0.8771}}}
    model.with_suffix(".json").write_text(json.dumps(card))
    monkeypatch.setenv("FER_MODEL", str(model))
    at = run_page(HOME)
    assert "**smile_net — 87.7 %**" in at.success[0].value and not at.info  # FER_MODEL serves the camera too
    assert any("not_happy, happy" in text for text in markdown_texts(at))


def test_home_page_links_exactly_the_pages_that_exist():
    at = run_page(HOME)
    existing = {re.sub(r"^\d+_", "", p.stem) for p in (PROJECT_ROOT / "app_pages").glob("*.py")}
    linked = [link.proto.page for link in at.get("page_link")]
    assert "Dataset" in linked
    assert set(linked) <= existing, "a link to a page file that does not exist"


def test_home_page_names_each_shipped_model_by_its_role_and_accuracy(tmp_path, monkeypatch):
    from helpers import shipped_pair_and_own_models

    from fer_core import model_card

    shipped_pair_and_own_models(tmp_path)
    monkeypatch.setattr(model_card, "MODELS_DIR", tmp_path)
    for variable in ("FER_MODEL", "FER_FAST_MODEL"):
        monkeypatch.delenv(variable, raising=False)
    at = run_page(HOME)
    assert not at.exception
    assert "**Accurate — ensemble of 6, 71.9 %**" in at.success[0].value
    assert "**Fast — 1.2 M parameters, 69.6 %**" in at.info[0].value


def test_router_names_home_first_and_routes_every_page_file():
    from fer_core.app.ui import HOME_PAGE, existing_pages

    pages = [HOME_PAGE, *existing_pages()]
    assert pages[0].title == "Home"
    assert {p.file for p in pages} == {p.name for p in (PROJECT_ROOT / "app_pages").glob("*.py")}
    at = run_page(HOME)
    at.switch_page("app_pages/1_Dataset.py").run()
    assert not at.exception and at.title[0].value == "Dataset"


def test_no_pages_folder_beside_the_entry_point():
    """Streamlit runs its file-based pages instead of the router while a pages/ folder exists beside
    streamlit_app.py and no session has called st.navigation yet (fer_core/app/ui.py says why)."""
    assert not (PROJECT_ROOT / "pages").exists()


def broken_app():
    """An app whose only page raises: the guard must log and show it (source run by AppTest.from_function)."""
    import streamlit as st

    from fer_core.app.ui import run_page_guarded

    def broken():
        st.write("before the failure")
        raise ValueError("bad input 42")

    run_page_guarded(st.navigation([st.Page(broken, title="Broken")]))


def test_a_failing_page_is_logged_with_its_traceback_and_named_in_words(caplog):
    with caplog.at_level(logging.ERROR, logger="fer_core"):
        at = AppTest.from_function(broken_app, default_timeout=60).run()
    assert at.error[0].value.startswith("The Broken page failed (ValueError).")
    assert "bad input 42" not in at.error[0].value and not at.exception, "no message or traceback to the visitor"
    (record,) = [r for r in caplog.records if r.name == "fer_core.app.ui"]
    assert "Broken" in record.getMessage()
    assert record.exc_info[0] is ValueError
    assert "raise ValueError" in caplog.text  # the traceback, not only the message


def test_home_and_dataset_pages_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"for script in ({HOME!r}, {DATASET!r}):\n"
        "    assert not AppTest.from_file(script, default_timeout=60).run().exception\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


def test_dataset_page_shows_the_bundled_sample():
    at = run_page(DATASET)
    assert not at.error
    assert metric_values(at)["Faces loaded"] == "210"
    assert len(at.get("plotly_chart")) == 2, "counts and class balance charts"
    assert len(at.get("image")) == 7 + 1 + 7, "a grid row and a mean face per class, plus the enlarged face"
    assert "**happy** · 10 of 30 faces" in markdown_texts(at)
    assert at.dataframe[0].value.loc["PublicTest", "total"] == 210


def test_dataset_page_reshuffle_draws_other_faces():
    at = run_page(DATASET)
    source_before = [t for t in markdown_texts(at) if t.startswith("**Source:**")]
    at.button(key="reshuffle").click().run()
    assert at.session_state["sample_seed"] == 1
    source_after = [t for t in markdown_texts(at) if t.startswith("**Source:**")]
    assert source_before != source_after
    assert source_after[0].startswith(r"**Source:** sample/validation/angry/PublicTest\_"), "named from its root"


def test_dataset_page_filters_by_emotion():
    at = run_page(DATASET)
    at.multiselect(key=f"emotions:{SAMPLE}").set_value([3]).run()
    assert not at.exception
    assert metric_values(at)["Faces selected"] == "30"
    grid_rows = [t for t in markdown_texts(at) if " faces" in t and t.startswith("**")]
    assert grid_rows == ["**happy** · 10 of 30 faces"]
    at.multiselect(key=f"emotions:{SAMPLE}").set_value([]).run()
    assert not at.exception and "no faces" in at.warning[0].value


def test_dataset_page_names_a_broken_dataset_by_its_label_and_shows_none_of_its_rows(monkeypatch, tmp_path):
    root = tmp_path / "root"
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "fer2013.csv").write_text("emotion,pixels\n9,secret words\n")
    monkeypatch.setenv("FER_DATA_ROOTS", str(root))
    at = run_page(DATASET)
    assert at.selectbox(key="dataset").options == ["root/broken/fer2013.csv"]
    assert "No faces found" in at.error[0].value
    shown = " ".join([*(e.value for e in at.error), at.dataframe[0].value.to_csv()])
    assert "root/broken/fer2013.csv row 2" in shown or "fer2013.csv row 2" in shown
    assert "secret" not in shown and str(tmp_path) not in shown


def test_dataset_page_reads_the_full_folders_from_fer_data(monkeypatch, fer_dir):
    monkeypatch.setenv("FER_DATA", str(fer_dir))
    monkeypatch.delenv("FER_DATA_ROOTS", raising=False)
    at = run_page(DATASET)
    assert at.selectbox(key="dataset").options == ["sample", fer_dir.name]
    at.selectbox(key="dataset").set_value(fer_dir.name).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table.index.tolist() == ["Training", "PublicTest"]
    assert table["total"].tolist() == [28709, 3589]
    assert at.multiselect(key=f"splits:{fer_dir.resolve()}").value == ["Training", "PublicTest"]
