"""Every notebook runs top to bottom on a fresh kernel (nbclient)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# Minutes in all (3 min on 2 cores): run by `make test` and CI, not by a bare `pytest`.
pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def fetch_real_files(nb) -> None:
    """Fetch the real data files a notebook declares (metadata ``stem_fsl_widgets.real_files``).

    Done before the clock of the notebook starts; skips (with the reason) where the package index
    cannot be reached and the files are not cached.
    """
    from stem_fsl_widgets.datasets.real import RealDataError, real_file

    for name in nb.metadata.get("stem_fsl_widgets", {}).get("real_files", []):
        try:
            real_file(name)
        except RealDataError as err:
            pytest.skip(f"real data file {name!r} unavailable here: {err}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SFW_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = nbformat.read(path, as_version=4)
    fetch_real_files(nb)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


TEACHING = [p for p in NOTEBOOKS if p.stem[:2] in ("04", "05")]


@pytest.mark.parametrize("path", TEACHING, ids=[p.stem for p in TEACHING])
def test_teaching_notebooks_end_with_try_this_and_hidden_answers(path):
    nb = nbformat.read(path, as_version=4)
    start = max(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "# Try this" in c.source)
    tries = [c for c in nb.cells[start:] if c.cell_type == "code"]
    assert 2 <= len(tries) <= 3
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and "answers" in last.metadata.get("tags", [])
    assert last.source.startswith("<details>") and last.source.rstrip().endswith("</details>")
    # One numbered answer per experiment.
    numbered = [ln for ln in last.source.splitlines() if ln[:1].isdigit() and ln[1:4] == ". *"]
    assert len(numbered) == len(tries)
