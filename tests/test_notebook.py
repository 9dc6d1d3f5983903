"""The what-if notebook runs from top to bottom and shows its comparison and its map."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "what_if.ipynb"


@pytest.mark.slow
def test_what_if_notebook_runs(cache_dir, wuchang, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("GEOPLAN_CACHE_DIR", str(cache_dir))  # the session's prepared network, not ~/.cache
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Within a 15-minute walk:" in text and "people aged 60+" in text
    html = [o["data"]["text/html"] for o in outputs if o.output_type in ("execute_result", "display_data") and "text/html" in o.get("data", {})]
    assert any("two new, one closed" in page or "covered_after" in page for page in html)
    assert "leaflet" in html[-1].lower() or "iframe" in html[-1].lower()  # the folium map, inline
