"""Tests of dae_tutor.widgets.slider: the static HTML slider, the live widget, argument checks.

The static slider's JavaScript runs in a real browser in tests/browser/test_rendered_book.py.
"""

from __future__ import annotations

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from dae_tutor import widgets
from dae_tutor.widgets import MAX_VALUES, STATIC_ENV, WIDGET_VIEW_MIMETYPE, Slider, slider

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*>')


class Recorder:
    """A render function that draws its value as text and records every call."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def __call__(self, value: object) -> plt.Figure:
        self.calls.append(value)
        fig, ax = plt.subplots(figsize=(1.5, 1.0))
        ax.text(0.5, 0.5, str(value), ha="center", va="center")
        ax.set_axis_off()
        return fig


@pytest.fixture(autouse=True)
def _both_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATIC_ENV, raising=False)


def frames(html: str) -> list[bytes]:
    return [base64.b64decode(data, validate=True) for data in IMG.findall(html)]


def attribute(html: str, tag: str, name: str) -> str:
    match = re.search(rf"<{tag}\b[^>]*\b{name}=\"([^\"]*)\"", html)
    assert match, f"no {name}= on <{tag}> in the slider"
    return match.group(1)


def png_pixels(png: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(png))


# -- static form -----------------------------------------------------------------------------------


def test_static_html_has_one_decodable_png_per_value() -> None:
    values = [0.1, 0.2, 0.5, 1.0]
    html = slider(Recorder(), values, "σ").to_html()
    pngs = frames(html)
    assert len(pngs) == len(values) == html.count("<img ")
    assert all(png.startswith(PNG_MAGIC) for png in pngs)
    assert all(png_pixels(png).shape[:2] == (80, 120) for png in pngs)  # 1.5 x 1.0 inches at 80 dpi


def test_distinct_renders_give_distinct_frames() -> None:
    pngs = frames(slider(Recorder(), ["a", "b", "c"], "letter").to_html())
    assert len(set(pngs)) == 3


def test_render_is_called_once_per_value_with_the_given_values() -> None:
    render = Recorder()
    values = (1, 2.5, "three")
    slider(render, values, "x")
    assert render.calls == list(values)


def test_range_input_spans_the_frame_indices_and_starts_at_initial() -> None:
    html = slider(Recorder(), [1, 2, 3, 4, 5], "k", initial=4).to_html()
    assert attribute(html, "input", "type") == "range"
    assert (attribute(html, "input", "min"), attribute(html, "input", "max")) == ("0", "4")
    assert attribute(html, "input", "step") == "1"
    assert attribute(html, "input", "value") == "3"
    # Only the initial frame shows before any script runs (GitHub, nbviewer), and its value is named.
    shown = [tag for tag in re.findall(r"<img [^>]*>", html) if "display:none" not in tag]
    assert len(shown) == 1 and 'data-label="k = 4"' in shown[0]
    assert re.search(r"<output [^>]*>k = 4</output>", html)


def test_the_input_stays_disabled_until_the_script_enables_it() -> None:
    html = slider(Recorder(), [1, 2], "k").to_html()
    assert re.search(r"<input [^>]*\bdisabled\b", html)
    assert "input.disabled = false" in html


def test_label_and_values_are_html_escaped() -> None:
    html = slider(Recorder(), ["<a>", "b&c"], "<script>x</script>").to_html()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert 'data-label="&lt;script&gt;x&lt;/script&gt; = &lt;a&gt;"' in html


def test_ids_are_unique_across_sliders_and_repeated_displays() -> None:
    first = slider(Recorder(), [1, 2], "k")
    second = slider(Recorder(), [1, 2], "k")  # same content: ids must still differ
    pages = [first.to_html(), second.to_html(), first.to_html()]
    ids = [found for page in pages for found in re.findall(r'\bid="([^"]+)"', page)]
    assert len(ids) == 9  # container, input, output per slider
    assert len(set(ids)) == len(ids)
    for page in pages:  # the script and the label point at this slider's own elements
        root = re.search(r'class="dae-slider" id="([^"]+)"', page).group(1)
        assert f'getElementById("{root}")' in page
        assert f'<label for="{root}-input">' in page


def test_static_html_loads_nothing_from_outside() -> None:
    html = slider(Recorder(), [1, 2, 3], "k").to_html()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<(link|iframe)\b", html)
    assert html.count("<script>") == 1


def test_frames_close_every_figure_they_open() -> None:
    before = plt.get_fignums()
    slider(Recorder(), [1, 2, 3], "k")
    assert plt.get_fignums() == before


def test_render_may_draw_on_the_current_figure_or_return_axes() -> None:
    def on_current(value: float) -> None:
        plt.figure(figsize=(1, 1))
        plt.plot([0, 1], [0, value])

    def axes(value: float) -> plt.Axes:
        _, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [value, 0])
        return ax

    for render in (on_current, axes):
        pngs = frames(slider(render, [1.0, 2.0], "a").to_html())
        assert len(pngs) == 2 and pngs[0] != pngs[1]
    assert plt.get_fignums() == []


def test_numpy_values_and_rounded_initial() -> None:
    values = np.linspace(0.2, 1.0, 5)  # 0.6000000000000001 among them
    s = slider(Recorder(), values, "σ", initial=0.6)
    assert s.value == pytest.approx(0.6)
    assert s.value_labels == ["0.2", "0.4", "0.6", "0.8", "1"]
    assert all(type(v) is float for v in s.values)


def test_value_labels_keep_close_values_apart() -> None:
    s = slider(Recorder(), [0.1, 0.1000001, 1e-7], "ε", initial=1e-7)
    assert len(set(s.value_labels)) == 3
    assert s.value_labels[2] == "1e-07"


# -- both forms in one output ---------------------------------------------------------------------


def test_mimebundle_carries_the_widget_view_and_the_static_html() -> None:
    s = slider(Recorder(), [1, 2, 3], "k", initial=2)
    bundle = s._repr_mimebundle_()
    assert bundle[WIDGET_VIEW_MIMETYPE]["model_id"] == s.widget.model_id
    assert bundle["text/html"].startswith('<div class="dae-slider"')
    assert bundle["text/plain"] == "Slider(k = 2 of [1, 2, 3])"


def test_static_only_mode_builds_no_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATIC_ENV, "1")
    s = slider(Recorder(), [1, 2], "k")
    assert s.widget is None and s.control is None
    assert set(s._repr_mimebundle_()) == {"text/plain", "text/html"}


def test_live_only_mode_precomputes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATIC_ENV, "0")
    render = Recorder()
    s = slider(render, [1, 2, 3], "k", initial=3)
    assert render.calls == [3]  # only the picture on show
    assert s.frames is None and s._repr_html_() is None
    assert set(s._repr_mimebundle_()) == {"text/plain", WIDGET_VIEW_MIMETYPE}
    with pytest.raises(RuntimeError, match="live-only"):
        s.to_html()


def test_unknown_mode_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATIC_ENV, "yes")
    with pytest.raises(ValueError, match=STATIC_ENV):
        slider(Recorder(), [1, 2], "k")


# -- live form -------------------------------------------------------------------------------------


def shown_png(s: Slider) -> bytes:
    (output,) = s.output.outputs
    assert output["output_type"] == "display_data"
    return base64.b64decode(output["data"]["image/png"])


def test_live_widget_is_a_selection_slider_over_the_values() -> None:
    s = slider(Recorder(), [0.5, 1, "two"], "k", initial=1)
    assert type(s.control).__name__ == "SelectionSlider"
    assert list(s.control.options) == [("0.5", 0.5), ("1", 1), ("two", "two")]
    assert s.control.value == 1 and s.control.description == "k"
    assert s.widget.children == (s.control, s.output)
    assert shown_png(s) == s.frames[1]  # the initial picture is the precomputed frame


def test_changing_the_live_value_re_renders_into_the_output() -> None:
    render = Recorder()
    s = slider(render, [1, 2, 3], "k")
    render.calls.clear()
    before = shown_png(s)
    s.control.value = 3  # what the frontend does when the reader moves the slider
    assert render.calls == [3]
    after = shown_png(s)
    assert after.startswith(PNG_MAGIC) and after != before
    assert s.value == 3 and s.output.outputs[0]["data"]["text/plain"] == "<k = 3>"


def test_setting_value_moves_the_slider() -> None:
    render = Recorder()
    s = slider(render, [0.1, 0.2, 0.3], "σ")
    render.calls.clear()
    s.value = 0.3
    assert s.control.value == 0.3 and render.calls == [0.3]
    with pytest.raises(ValueError, match="value must be one of"):
        s.value = 0.4


def test_a_failing_live_render_shows_its_traceback_in_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    def render(value: int) -> plt.Figure:
        if value == 2:
            raise RuntimeError("boom at 2")
        return Recorder()(value)

    monkeypatch.setenv(STATIC_ENV, "0")  # live only, so building the slider does not render value 2
    s = slider(render, [1, 2], "k")
    s.control.value = 2  # must not raise: an observer's exception would only reach the kernel log
    (output,) = s.output.outputs
    assert output["output_type"] == "stream" and "boom at 2" in output["text"]
    assert plt.get_fignums() == []


def test_a_failing_first_live_render_fails_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def render(value: int) -> None:
        raise RuntimeError(f"boom at {value}")

    monkeypatch.setenv(STATIC_ENV, "0")
    with pytest.raises(RuntimeError, match="boom at 1"):
        slider(render, [1, 2], "k")


# -- argument checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"render": "not callable"}, TypeError, "render must be callable"),
        ({"values": "abc"}, TypeError, "values must be a sequence"),
        ({"values": {1, 2}}, TypeError, "values must be a sequence"),
        ({"values": (v for v in (1, 2))}, TypeError, "values must be a sequence"),
        ({"values": np.zeros((2, 2))}, TypeError, "values must be a sequence"),
        ({"values": []}, ValueError, "values must not be empty"),
        ({"values": [1, None]}, TypeError, r"values\[1\] must be a number or a string"),
        ({"values": [True, False]}, TypeError, r"values\[0\] must be a number or a string"),
        ({"values": [1.0, float("nan")]}, ValueError, r"values\[1\] must be finite"),
        ({"values": [1, 2, 1.0]}, ValueError, "values must be distinct"),
        ({"values": list(range(MAX_VALUES + 1))}, ValueError, f"at most {MAX_VALUES}"),
        ({"label": 3}, TypeError, "label must be a string"),
        ({"label": "  "}, ValueError, "label must not be empty"),
        ({"initial": 7}, ValueError, "initial must be one of values"),
        ({"initial": [1]}, TypeError, "initial must be a number or a string"),
        ({"initial": True}, TypeError, "initial must be a number or a string"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, error: type[Exception], match: str) -> None:
    render = Recorder()
    arguments = {"render": render, "values": [1, 2, 3], "label": "k", **kwargs}
    initial = arguments.pop("initial", None)
    with pytest.raises(error, match=match):
        slider(arguments["render"], arguments["values"], arguments["label"], initial=initial)
    assert render.calls == []  # checked before anything is drawn


def test_render_returning_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="render must return a matplotlib Figure"):
        slider(lambda value: "a picture", [1, 2], "k")
    assert plt.get_fignums() == []


def test_render_returning_none_without_a_figure_is_a_value_error() -> None:
    plt.close("all")
    with pytest.raises(ValueError, match="returned None and drew no figure"):
        slider(lambda value: None, [1, 2], "k")


def test_errors_inside_render_propagate_from_slider() -> None:
    def render(value: int) -> None:
        plt.figure()
        raise ZeroDivisionError("bad render")

    with pytest.raises(ZeroDivisionError, match="bad render"):
        slider(render, [1, 2], "k")
    assert plt.get_fignums() == []  # the half-drawn figure was closed


def test_module_exports() -> None:
    assert set(widgets.__all__) >= {"slider", "Slider"}
