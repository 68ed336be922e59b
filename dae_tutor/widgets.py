"""One slider that is a live ipywidget in a kernel and a self-contained slider in the static book.

:func:`slider` takes a function that draws one picture for one parameter value, and
a short list of values. It returns a :class:`Slider`, which a notebook displays as

- a **live widget** (an ipywidgets ``SelectionSlider`` over the values and an
  ``Output`` that re-renders the picture on every change) wherever a Jupyter
  widget manager is running: JupyterLab, Notebook 7, VS Code, Colab;
- a **static slider** everywhere else (the rendered book, nbviewer, GitHub):
  plain HTML with one precomputed PNG frame per value (inlined as base64), an
  ``<input type="range">`` and a few lines of inline JavaScript that show the
  frame for the chosen value. It needs no kernel, no CDN and no other file.

Both forms travel in one display output, as two MIME types: the widget view
(``application/vnd.jupyter.widget-view+json``), which a live frontend renders, and
``text/html``, the static fallback. A kernel cannot tell whether a frontend is
watching (a book build runs the notebook in an ipykernel too, through nbclient), so
the choice is left to whoever renders the output. Jupyter Book (myst-nb) prefers the
widget view by default, which shows nothing in a static page; the book's
``_config.yml`` therefore ranks ``text/html`` first for HTML builders::

    sphinx:
      config:
        nb_mime_priority_overrides:
          - [html, text/html, 0]
          - [dirhtml, text/html, 0]
          - [singlehtml, text/html, 0]

The environment variable ``DAE_TUTOR_STATIC`` chooses the forms: unset or ``auto``
gives both; ``1`` gives only the static slider (no widget is created, e.g. for
exporting HTML); ``0`` gives only the live widget (no frames are precomputed, which
saves time when exploring in a kernel).

All frames are rendered when :func:`slider` is called, not when the output is
displayed, so that an error in ``render`` fails the cell (and the book build)
instead of being swallowed by IPython's display machinery.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import math
import os
import traceback
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.figure import Figure, SubFigure

from dae_tutor import checks

__all__ = ["MAX_VALUES", "STATIC_ENV", "Slider", "slider"]

#: Environment variable choosing the forms: ``auto`` (default, both), ``1`` (static), ``0`` (live).
STATIC_ENV = "DAE_TUTOR_STATIC"
_MODES = {"": "both", "auto": "both", "1": "static", "0": "live"}

#: Every value becomes one inline PNG in the notebook, so the list is kept short.
MAX_VALUES = 25

#: Resolution of the frames: small enough that a dozen frames keep a notebook lean.
DPI = 80

WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"

_counter = itertools.count()

Value = float | int | str


def _mode() -> str:
    raw = os.environ.get(STATIC_ENV, "").strip().lower()
    checks.one_of(STATIC_ENV, raw, list(_MODES))
    return _MODES[raw]


def _key(value: Value) -> tuple[str, Any]:
    """Equality key of a value: numbers compare by value (``1 == 1.0``), strings as strings."""
    return ("s", value) if isinstance(value, str) else ("n", float(value))


def _check_values(values: object) -> list[Value]:
    """Return ``values`` as a list of distinct finite numbers or strings."""
    if isinstance(values, str | bytes) or not (
        isinstance(values, Sequence) or (hasattr(values, "tolist") and getattr(values, "ndim", None) == 1)
    ):
        raise TypeError(
            "values must be a sequence (list, tuple, range or 1-d array) of numbers or strings, "
            f"got {type(values).__name__}"
        )
    items = list(values) if isinstance(values, Sequence) else values.tolist()
    if not items:
        raise ValueError("values must not be empty")
    if len(items) > MAX_VALUES:
        raise ValueError(
            f"values must have at most {MAX_VALUES} entries (each becomes an inline PNG frame), "
            f"got {len(items)}"
        )
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, Real | str):
            raise TypeError(f"values[{i}] must be a number or a string, got {type(item).__name__}")
        if isinstance(item, Real) and not math.isfinite(float(item)):
            raise ValueError(f"values[{i}] must be finite, got {item}")
    keys = [_key(item) for item in items]
    if len(set(keys)) != len(keys):
        repeated = sorted(
            {_format_value(item) for item, key in zip(items, keys, strict=True) if keys.count(key) > 1}
        )
        raise ValueError(f"values must be distinct, got repeated {repeated}")
    return items


def _format_value(value: Value, digits: int = 6) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Integral):
        return str(int(value))
    return f"{float(value):.{digits}g}"


def _labels(values: list[Value]) -> list[str]:
    """Short, distinct texts for the values (more digits only where 6 would merge two of them)."""
    for digits in (6, 10, 17):
        labels = [_format_value(value, digits) for value in values]
        if len(set(labels)) == len(labels):
            return labels
    return labels  # pragma: no cover - 17 significant digits tell distinct floats apart


def _index_of(name: str, value: object, values: list[Value]) -> int:
    """Index of ``value`` in ``values``; numbers also match up to rounding (0.6 finds 0.6000000000000001)."""
    if isinstance(value, bool) or not isinstance(value, Real | str):
        raise TypeError(f"{name} must be a number or a string, got {type(value).__name__}")
    keys = [_key(candidate) for candidate in values]
    if _key(value) in keys:
        return keys.index(_key(value))
    if isinstance(value, Real):
        close = [
            i
            for i, (kind, number) in enumerate(keys)
            if kind == "n" and math.isclose(number, float(value), rel_tol=1e-9, abs_tol=1e-12)
        ]
        if len(close) == 1:
            return close[0]
    raise ValueError(f"{name} must be one of values {_labels(values)}, got {value!r}")


def _figure_png(render: Callable[[Any], object], value: Value) -> bytes:
    """Call ``render(value)`` and return the picture it drew as PNG bytes (closing its figures)."""
    before = set(plt.get_fignums())
    try:
        result = render(value)
        if isinstance(result, Artist) and not isinstance(result, Figure):  # an Axes, a SubFigure...
            result = result.get_figure()
            while isinstance(result, SubFigure):
                result = result.figure
        if isinstance(result, Figure):
            fig = result
        elif result is None:
            if not plt.get_fignums():
                raise ValueError(
                    f"render({value!r}) returned None and drew no figure: "
                    "return a matplotlib Figure or draw on the current one"
                )
            fig = plt.gcf()
        else:
            raise TypeError(
                "render must return a matplotlib Figure (or None after drawing on the current figure), "
                f"got {type(result).__name__} for value {value!r}"
            )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
        plt.close(fig)  # a no-op for a figure that pyplot does not manage
        return buffer.getvalue()
    finally:
        # Close what render opened, so the inline backend does not show it again under the slider.
        for number in set(plt.get_fignums()) - before:
            plt.close(number)


class Slider:
    """A picture with a slider over precomputed values; see :func:`slider`.

    Attributes:
        values: the values, in slider order.
        label: the name shown next to the slider.
        value_labels: the values as shown (distinct short texts).
        frames: one PNG (bytes) per value, or ``None`` when only the live form was built.
        control: the ipywidgets ``SelectionSlider``, or ``None`` in static-only mode.
        output: the ipywidgets ``Output`` holding the live picture, or ``None``.
        widget: the live ``VBox`` (control above output), or ``None``.
    """

    def __init__(
        self,
        render: Callable[[Any], object],
        values: list[Value],
        label: str,
        index: int,
        mode: str,
    ) -> None:
        self.render = render
        self.values = values
        self.label = label
        self.value_labels = _labels(values)
        self._index = index
        self.frames: list[bytes] | None = None
        self.control: Any = None
        self.output: Any = None
        self.widget: Any = None
        if mode in ("both", "static"):
            self.frames = [_figure_png(render, value) for value in values]
        if mode in ("both", "live"):
            self._build_widget(mode)

    # -- live form ------------------------------------------------------------------------------
    def _build_widget(self, mode: str) -> None:
        try:
            import ipywidgets
        except ImportError:
            if mode == "live":
                raise
            return  # no ipywidgets: the static form alone
        self.control = ipywidgets.SelectionSlider(
            options=list(zip(self.value_labels, self.values, strict=True)),
            value=self.values[self._index],
            description=self.label,
            continuous_update=False,
            style={"description_width": "initial"},
            layout=ipywidgets.Layout(width="min(100%, 32em)"),
        )
        self.output = ipywidgets.Output()
        self.widget = ipywidgets.VBox([self.control, self.output])
        # The first picture: the precomputed frame, or drawn now (an error here fails the cell).
        initial = self.values[self._index]
        self._show_png(
            self.frames[self._index] if self.frames is not None else _figure_png(self.render, initial)
        )
        self.control.observe(self._on_change, names="value")

    def _on_change(self, change: dict[str, Any]) -> None:
        self._index = self.values.index(change["new"])
        self._redraw(change["new"])

    def _redraw(self, value: Value) -> None:
        try:
            png = _figure_png(self.render, value)
        except Exception:  # an observer's exception would only reach the kernel log
            self.output.outputs = (
                {"output_type": "stream", "name": "stderr", "text": traceback.format_exc()},
            )
            return
        self._show_png(png)

    def _show_png(self, png: bytes) -> None:
        # One assignment replaces the old picture: no flicker, and no need for a running IPython.
        self.output.outputs = (
            {
                "output_type": "display_data",
                "data": {
                    "image/png": base64.b64encode(png).decode("ascii"),
                    "text/plain": f"<{self.label} = {self.value_labels[self._index]}>",
                },
                "metadata": {},
            },
        )

    @property
    def value(self) -> Value:
        """The selected value (setting it moves the live slider and re-renders)."""
        return self.values[self._index]

    @value.setter
    def value(self, new: Value) -> None:
        index = _index_of("value", new, self.values)
        if self.control is not None:
            self.control.value = self.values[index]  # the observer re-renders
        self._index = index

    # -- static form ----------------------------------------------------------------------------
    def to_html(self) -> str:
        """The self-contained static slider: frames as inline PNGs, a range input and inline JS.

        Each call uses fresh element ids, so the same slider may be shown twice on a page.
        Without JavaScript (GitHub, nbviewer's sanitiser) the initial frame still shows.
        """
        if self.frames is None:
            raise RuntimeError(f"this slider was built live-only ({STATIC_ENV}=0): it has no static frames")
        digest = hashlib.sha1(b"".join(self.frames) + self.label.encode()).hexdigest()[:10]
        uid = f"dae-slider-{digest}-{next(_counter)}"
        label = html.escape(self.label)
        texts = [f"{self.label} = {text}" for text in self.value_labels]
        last = len(self.values) - 1
        images = "\n".join(
            f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
            f'alt="{html.escape(text)}" data-label="{html.escape(text)}" '
            f'style="max-width:100%;height:auto;{"" if i == self._index else "display:none;"}">'
            for i, (png, text) in enumerate(zip(self.frames, texts, strict=True))
        )
        # The script finds its own container (no global names), so several sliders coexist on a page.
        script = (
            "(function () {"
            f" var root = document.getElementById({json.dumps(uid)}); if (!root) return;"
            ' var input = root.querySelector("input[type=range]");'
            ' var shown = root.querySelector("output");'
            ' var frames = root.querySelectorAll(".dae-slider-frames img");'
            " function show() {"
            "  var k = Number(input.value);"
            '  for (var i = 0; i < frames.length; i++) frames[i].style.display = i === k ? "" : "none";'
            '  var text = frames[k].getAttribute("data-label");'
            '  shown.textContent = text; input.setAttribute("aria-valuetext", text);'
            " }"
            ' input.addEventListener("input", show); input.addEventListener("change", show);'
            " input.disabled = false; show();"
            "})();"
        )
        return (
            f'<div class="dae-slider" id="{uid}" style="margin:0.5em 0;">\n'
            '<div class="dae-slider-controls" style="display:flex;align-items:center;gap:0.75em;">'
            f'<label for="{uid}-input">{label}</label>'
            f'<input type="range" id="{uid}-input" min="0" max="{last}" step="1" value="{self._index}" '
            f'aria-valuetext="{html.escape(texts[self._index])}" disabled style="flex:0 1 20em;">'
            f'<output id="{uid}-value" for="{uid}-input">{html.escape(texts[self._index])}</output>'
            "</div>\n"
            f'<div class="dae-slider-frames">\n{images}\n</div>\n'
            f"<script>{script}</script>\n"
            "</div>"
        )

    def _repr_html_(self) -> str | None:
        return self.to_html() if self.frames is not None else None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": repr(self)}
        if self.frames is not None:
            data["text/html"] = self.to_html()
        if self.widget is not None:
            view = self.widget._repr_mimebundle_(include=include, exclude=exclude)
            if WIDGET_VIEW_MIMETYPE in view:
                data[WIDGET_VIEW_MIMETYPE] = view[WIDGET_VIEW_MIMETYPE]
        return data

    def __repr__(self) -> str:
        shown = ", ".join(self.value_labels)
        return f"Slider({self.label} = {self.value_labels[self._index]} of [{shown}])"


def slider(
    render: Callable[[Any], object],
    values: Sequence[Value],
    label: str,
    *,
    initial: Value | None = None,
) -> Slider:
    """A picture that the reader changes with a slider: live in a kernel, precomputed in the book.

    Args:
        render: ``render(value)`` draws the picture for one value and returns its matplotlib
            ``Figure`` (or an ``Axes`` of it), or returns ``None`` after drawing on the current
            figure. It is called once per value here, and again on every change of the live slider.
        values: the values to offer, in slider order: a non-empty list, tuple, range or 1-d array of
            distinct numbers or strings, at most :data:`MAX_VALUES` (about a dozen keeps a notebook
            lean: each value becomes one inline PNG frame of about 20-60 kB).
        label: the parameter's name shown next to the slider, e.g. ``"σ"`` (plain text: the static
            page does not typeset TeX there).
        initial: the value shown first (default: the first of ``values``).

    Returns:
        A :class:`Slider`; display it (make it the cell's last expression) to show it.

    Raises:
        TypeError: ``render`` is not callable, ``values`` is not a sequence of numbers or strings,
            ``label`` is not a string, or ``render`` returns something that is not a figure.
        ValueError: ``values`` is empty, too long, has repeats or non-finite numbers; ``label`` is
            empty; ``initial`` is not one of ``values``; or ``DAE_TUTOR_STATIC`` is not
            ``auto``, ``1`` or ``0``.

    Example::

        def render(sigma):
            fig, ax = plt.subplots(figsize=(4, 3))
            ax.plot(x, np.exp(-x**2 / (2 * sigma**2)))
            return fig

        slider(render, [0.1, 0.2, 0.5, 1.0], "σ", initial=0.5)
    """
    if not callable(render):
        raise TypeError(f"render must be callable, got {type(render).__name__}")
    items = _check_values(values)
    if not isinstance(label, str):
        raise TypeError(f"label must be a string, got {type(label).__name__}")
    if not label.strip():
        raise ValueError("label must not be empty")
    index = 0 if initial is None else _index_of("initial", initial, items)
    return Slider(render, items, label.strip(), index, _mode())
