"""Copy the README's picture out of chapter 1's committed outputs (the Fig. 3.5 cell).

Run from the repository root after re-executing the chapter:
``python images/make_readme_figure.py``. The picture is the notebook's own output,
so it always shows what the code computed.
"""

import base64
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "(a) r(x) - x, global view"

notebook = json.loads((ROOT / "chapters" / "01_dae_score.ipynb").read_text())
cell = next(c for c in notebook["cells"] if c["cell_type"] == "code" and MARKER in "".join(c["source"]))
png = next(o["data"]["image/png"] for o in cell["outputs"] if "image/png" in o.get("data", {}))
(ROOT / "images" / "spiral_field.png").write_bytes(base64.b64decode(png))
print("wrote images/spiral_field.png")
