"""Sphinx extension: search-result excerpts show formulas as plain text, not as raw TeX.

Sphinx's ``searchtools.js`` builds each result's excerpt from the ``textContent`` of the
page's HTML, where a formula is still its TeX source (``\\(\\sigma\\)``): MathJax only
typesets it in the browser. On the search page this script wraps ``Search.htmlToText`` so
that every ``.math`` element is first turned into plain text (delimiters and braces
dropped, Greek letters and common symbols as Unicode: ``\\(\\sigma^2\\)`` -> ``σ^2``).
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

SCRIPT = r"""
(() => {
  const SYMBOLS = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", zeta: "ζ",
    eta: "η", theta: "θ", kappa: "κ", lambda: "λ", mu: "μ", nu: "ν", xi: "ξ", pi: "π", rho: "ρ",
    sigma: "σ", tau: "τ", phi: "φ", varphi: "φ", chi: "χ", psi: "ψ", omega: "ω", Gamma: "Γ",
    Delta: "Δ", Theta: "Θ", Lambda: "Λ", Pi: "Π", Sigma: "Σ", Phi: "Φ", Psi: "Ψ", Omega: "Ω",
    nabla: "∇", partial: "∂", infty: "∞", approx: "≈", le: "≤", leq: "≤", ge: "≥", geq: "≥",
    neq: "≠", times: "×", cdot: "·", to: "→", rightarrow: "→", sim: "~", in: "∈", sum: "Σ",
    prod: "Π", int: "∫", sqrt: "√", pm: "±", ell: "ℓ", mid: "|",
  };
  const plainMath = (tex) => tex
    .replace(/^\s*(\\\(|\\\[|\$\$?)/, "").replace(/(\\\)|\\\]|\$\$?)\s*$/, "")
    .replace(/\\(?:mathcal|mathbb|mathbf|mathrm|operatorname|text|tilde|hat|bar|left|right|big|Big)\b/g, "")
    .replace(/\\([A-Za-z]+)/g, (_, name) => SYMBOLS[name] ?? name)
    .replace(/\\[,;:! ]/g, " ").replace(/[{}]/g, "").replace(/\s+/g, " ").trim();
  const patch = () => {
    if (typeof Search === "undefined" || Search.daePlainMath) return;
    const htmlToText = Search.htmlToText;
    Search.htmlToText = (html, anchor) => {
      const page = new DOMParser().parseFromString(html, "text/html");
      page.querySelectorAll(".math").forEach((el) => { el.textContent = plainMath(el.textContent); });
      return htmlToText(page.documentElement.outerHTML, anchor);
    };
    Search.daePlainMath = true;
  };
  patch();
  document.addEventListener("DOMContentLoaded", patch);
})();
"""


def add_to_search_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if pagename == "search":
        app.add_js_file(None, body=SCRIPT)  # called here, it is added to this page only


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("html-page-context", add_to_search_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
