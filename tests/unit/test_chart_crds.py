"""The chart's CRD templates come from the same generator as crds/ and do not drift; they are
gated by crds.enabled and kept on uninstall when crds.keep; kopf's peering CRDs ship too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlcycle import crdgen
from tests.unit.chart_rendering import of_kind, render

GENERATED = {crd["metadata"]["name"]: crd for crd in crdgen.build_crds()}


def test_committed_chart_templates_match_the_models() -> None:
    differing = crdgen.differing(crdgen.DEFAULT_CHART_DIR, crdgen.rendered_chart_files())
    assert not differing, f"{differing} out of date: run python -m mlcycle.crdgen"


def test_rendered_crds_are_the_generated_ones_with_labels_and_keep() -> None:
    rendered = {crd["metadata"]["name"]: crd
                for crd in of_kind(render(), "CustomResourceDefinition")}
    assert set(GENERATED) | {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} == set(
        rendered)
    for name, generated in GENERATED.items():
        crd = rendered[name]
        assert crd["spec"] == generated["spec"], name
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "mlcycle"


def test_crds_enabled_and_keep_gate_every_crd() -> None:
    assert not of_kind(render("--set", "crds.enabled=false"), "CustomResourceDefinition")
    unkept = of_kind(render("--set", "crds.keep=false"), "CustomResourceDefinition")
    assert len(unkept) == 5
    assert all("annotations" not in crd["metadata"] for crd in unkept)


def test_kopf_peering_crds_have_the_scopes_kopf_expects() -> None:
    rendered = {crd["metadata"]["name"]: crd
                for crd in of_kind(render(), "CustomResourceDefinition")}
    scopes: dict[str, Any] = {
        name: (crd["spec"]["scope"], crd["spec"]["names"]["kind"])
        for name, crd in rendered.items() if name.endswith(".kopf.dev")}
    assert scopes == {"kopfpeerings.kopf.dev": ("Namespaced", "KopfPeering"),
                      "clusterkopfpeerings.kopf.dev": ("Cluster", "ClusterKopfPeering")}
    for name in scopes:
        (version,) = rendered[name]["spec"]["versions"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_check_covers_the_chart_templates(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    crds, chart = tmp_path / "crds", tmp_path / "chart"
    assert crdgen.main(["--output-dir", str(crds), "--chart-dir", str(chart)]) == 0
    assert crdgen.main(["--check", "--output-dir", str(crds), "--chart-dir", str(chart)]) == 0
    edited = chart / "datasets.mlcycle.dev.yaml"
    edited.write_text(edited.read_text().replace("{{- if .Values.crds.enabled }}", ""))
    (chart / "kopfpeerings.kopf.dev.yaml").write_text("not ours\n")
    capsys.readouterr()
    assert crdgen.main(["--check", "--output-dir", str(crds), "--chart-dir", str(chart)]) == 1
    out = capsys.readouterr().out
    assert str(edited) in out and "kopfpeerings" not in out
