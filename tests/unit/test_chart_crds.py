"""The chart ships the project's CRDs unchanged: charts/modeldeploy/crds/ is a byte-identical
copy of crds/ (Helm installs from there; `kubectl apply -f crds/` from the other).

Here rather than with the other chart tests (e2e/install/) because it needs no helm binary, so
it also runs where the e2e tier is skipped.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_chart_crds_are_the_top_level_crds() -> None:
    top = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (ROOT / "charts/modeldeploy/crds").glob("*.yaml")}
    assert top, "no CRDs in crds/"
    assert copies == top, "charts/modeldeploy/crds/ differs from crds/: run `make chart-crds`"
