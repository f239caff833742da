"""`sovereign matrix`: every variant x cluster x end use from one batched evaluation, as Markdown and HTML."""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import sys
from collections.abc import Iterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sovereign import cli, toolchain
from sovereign.devenv.process import free_port
from sovereign.matrix.grid import END_USES, ComplianceMatrix, compute_matrix, load_clusters
from sovereign.matrix.html_page import render_html
from sovereign.matrix.markdown import render_markdown
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.judgement import Judge
from sovereign.policy.opa_token import client_token
from sovereign.policy.rest_engine import RestEngine
from sovereign.policy.wasm_engine import WasmEngine
from sovereign.policydata import load_policy_data

CLUSTERS = toolchain.REPO_ROOT / "clusters"
DATA = load_policy_data()
AS_OF = "2026-06-01"
NONCOMPLIANT_CODES = {"EU_MULTIMODAL_LICENCE", "REGION_MODALITY"}
VOID_ELEMENTS = {"meta", "br", "link", "img", "input", "hr", "col", "wbr", "source", "area", "base"}


@pytest.fixture(autouse=True)
def _isolated(cli_state: Path) -> None:
    """Every test runs the CLI on this module's own state dir and signed bundle."""


@pytest.fixture(scope="module")
def wasm(signed_bundle: SignedBundle) -> Iterator[WasmEngine]:
    engine = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def matrix(wasm: WasmEngine) -> ComplianceMatrix:
    return compute_matrix(load_clusters(CLUSTERS), Judge(wasm), DATA, date.fromisoformat(AS_OF))


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run `sovereign ARGS` through the real entry point: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sovereign", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def _policy_part(decision: dict[str, Any]) -> dict[str, Any]:
    return {key: decision[key] for key in ("allow", "violations", "obligations", "policy_revision")}


# --- the grid ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_matrix_covers_every_variant_cluster_and_end_use(
    matrix: ComplianceMatrix, signed_bundle: SignedBundle
) -> None:
    names = [cluster.name for cluster in matrix.clusters]
    assert len(names) == len(list(CLUSTERS.glob("*.yaml"))) >= 9
    assert len(END_USES) == 6
    assert len(matrix) == len(DATA.models) * len(names) * 6 >= 1000
    assert set(matrix.cells) == set(itertools.product(names, [m.id for m in DATA.models], END_USES))
    assert matrix.engine == "wasm" and matrix.policy_revision == signed_bundle.revision
    assert matrix.as_of == AS_OF
    assert not matrix.engine_failures()
    # A report of one colour would prove nothing about the layout of either.
    assert 0 < matrix.allowed_count() < len(matrix)


class CountingEngine:
    """The real engine behind a seam that counts how the matrix asks it."""

    def __init__(self, engine: WasmEngine) -> None:
        self.engine, self.name = engine, engine.name
        self.decide_calls: list[dict[str, Any]] = []
        self.batches: list[int] = []

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        self.decide_calls.append(inp)
        return self.engine.decide(inp)

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append(len(inputs))
        return self.engine.decide_many(inputs)


@pytest.mark.slow
def test_matrix_is_one_batched_evaluation(wasm: WasmEngine, matrix: ComplianceMatrix) -> None:
    counting = CountingEngine(wasm)
    counted = compute_matrix(load_clusters(CLUSTERS), Judge(counting), DATA, date.fromisoformat(AS_OF))
    # ONE batch: every cell, plus each declared deployment judged on its own facts (GPUs, siblings).
    declared = sum(len(cluster.spec.deployments) for cluster in counted.clusters)
    assert len(counting.batches) == 1 and counting.decide_calls == []
    assert len(counted) <= counting.batches[0] <= len(counted) + declared
    assert {key: cell.decision for key, cell in counted.cells.items()} == {
        key: cell.decision for key, cell in matrix.cells.items()
    }


@pytest.mark.slow
def test_cells_agree_with_sovereign_decide(
    matrix: ComplianceMatrix, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = [cell for cell in matrix.cells.values() if not cell.allowed]
    allowed = [cell for cell in matrix.cells.values() if cell.allowed]
    sample = random.Random(8).sample(denied, 3) + random.Random(8).sample(allowed, 2)
    paths = {cluster.name: cluster.path for cluster in matrix.clusters}
    for cell in sample:
        code, out, err = run_cli(
            monkeypatch,
            capsys,
            *("decide", "--cluster", str(paths[cell.cluster]), "--model", cell.model),
            *("--end-use", cell.end_use, "--as-of", AS_OF),
        )
        assert code == (0 if cell.allowed else 1), err
        assert _policy_part(json.loads(out)) == _policy_part(cell.decision), cell


def _opa_data_queries(url: str) -> float:
    """How many POST /v1/data queries the OPA server has answered, from its own Prometheus metrics (read
    with the session's token, as OPA requires for everything but health)."""
    bearer = {"Authorization": f"Bearer {client_token()}"}
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in requests.get(f"{url}/metrics", headers=bearer, timeout=5).text.splitlines()
        if line.startswith("http_request_duration_seconds_count{")
        and 'handler="v1/data"' in line
        and 'method="post"' in line
    ]
    return sum(counts)


@pytest.mark.slow
def test_matrix_over_opa_rest_is_one_query_and_matches_in_process(
    matrix: ComplianceMatrix, signed_bundle: SignedBundle, start_opa_server: Any
) -> None:
    url = start_opa_server(signed_bundle).url
    # The default 2 s timeout suits one decision; OPA evaluates a batch of ~2,000 in 1-8 s here.
    rest = RestEngine(url, timeout_s=60)
    before = _opa_data_queries(url)
    over_rest = compute_matrix(load_clusters(CLUSTERS), Judge(rest), DATA, date.fromisoformat(AS_OF))
    rest.close()
    assert _opa_data_queries(url) - before == 1  # the real server saw one query for every cell
    assert over_rest.engine == "opa-rest" and not over_rest.engine_failures()
    assert {key: _policy_part(cell.decision) for key, cell in over_rest.cells.items()} == {
        key: _policy_part(cell.decision) for key, cell in matrix.cells.items()
    }


# --- the example clusters ---------------------------------------------------------------------------------


def test_the_one_noncompliant_example_gets_its_documented_codes(matrix: ComplianceMatrix) -> None:
    noncompliant = sorted(CLUSTERS.glob("*-noncompliant.yaml"))
    assert len(noncompliant) == 1
    header = "".join(line for line in noncompliant[0].read_text().splitlines(True) if line.startswith("#"))
    assert all(code in header for code in NONCOMPLIANT_CODES), header
    cells = {
        declared.deployment.name: matrix.deployment_cell(declared)
        for declared in matrix.deployments
        if declared.cluster.path == noncompliant[0]
    }
    vision = cells["shelf-vision"]
    assert vision is not None and not vision.allowed
    assert set(vision.violation_codes) == NONCOMPLIANT_CODES


def test_every_other_declared_deployment_is_allowed(matrix: ComplianceMatrix) -> None:
    regions = {cluster.spec.region for cluster in matrix.clusters}
    assert regions == set(DATA.regions)
    for region in regions:
        assert sum(cluster.spec.region == region for cluster in matrix.clusters) >= 2, region
    others = [d for d in matrix.deployments if not d.cluster.path.name.endswith("-noncompliant.yaml")]
    assert others
    for declared in others:
        cell = matrix.deployment_cell(declared)
        assert cell is not None and cell.allowed, (declared.cluster.name, declared.deployment.name, cell)


# --- the pages --------------------------------------------------------------------------------------------


class StrictPage(HTMLParser):
    """Fails on any end tag that does not close the innermost open element; records cells and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: set[str] = set()
        self.section = ""
        self.cells: dict[str, list[dict[str, str]]] = {}  # section id -> decision cells (td with a title)
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)
        if tag == "section":
            self.section = attributes["id"]
        if tag == "td" and "title" in attributes:
            self.cells.setdefault(self.section, []).append(attributes)
        if tag == "a":
            self.links.append(attributes["href"])

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> StrictPage:
    parser = StrictPage()
    parser.feed(page)
    parser.close()
    assert parser.open == [], f"unclosed: {parser.open}"
    return parser


def citation_urls(citations: set[str]) -> set[str]:
    return {c.rsplit(" — ", 1)[1] for c in citations if " — https://" in c}


def test_html_is_well_formed_self_contained_and_cites_on_hover(matrix: ComplianceMatrix) -> None:
    page = parse(render_html(matrix))
    assert not page.tags & {"script", "link", "img", "iframe"}  # self-contained: inline CSS, no assets
    text = " ".join(page.text)
    for fact in (matrix.policy_revision, matrix.engine, matrix.as_of):
        assert fact and fact in text
    for cluster in matrix.clusters:
        cells = page.cells[f"cluster-{cluster.name}"]
        assert len(cells) == len(matrix.models) * len(END_USES)
        rows = [cells[start : start + len(END_USES)] for start in range(0, len(cells), len(END_USES))]
        for model, row in zip(matrix.models, rows, strict=True):
            for cell, td in zip(matrix.row(cluster.name, model), row, strict=True):
                assert td["class"].split()[0] == ("allow" if cell.allowed else "deny")
                for note in cell.decision["violations"] + cell.decision["obligations"]:
                    assert note["message"] in td["title"] and note["citation"] in td["title"]
    declared = page.cells["declared"]
    assert [td["class"] for td in declared].count("deny") == 1  # the one non-compliant example
    legend = matrix.legend()
    codes_seen = {
        n["code"] for c in matrix.cells.values() for n in c.decision["violations"] + c.decision["obligations"]
    }
    assert {entry.code for entry in legend} == codes_seen
    citations = {citation for entry in legend for citation in entry.citations}
    # A source's URL is a link; the project's own rules name a file of this repository, shown as text.
    assert citation_urls(citations) <= set(page.links)
    assert {c for c in citations if c.startswith("sovereign design rule")}
    assert all(link.startswith(("#", "https://", "http://")) for link in page.links)


def test_markdown_has_a_table_per_cluster_with_codes_and_a_legend(matrix: ComplianceMatrix) -> None:
    page = render_markdown(matrix)
    for cluster in matrix.clusters:
        section = page.split(f"\n## {cluster.name}\n", 1)[1].split("\n## ", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert len(rows) == len(matrix.models)
        for model, row in zip(matrix.models, rows, strict=True):
            columns = re.split(r"(?<!\\)\|", row)[2:-1]
            assert len(columns) == len(END_USES)
            for cell, column in zip(matrix.row(cluster.name, model), columns, strict=True):
                assert column.strip().startswith("✅" if cell.allowed else "❌")
                assert all(f"`{code}`" in column for code in cell.violation_codes)
    legend = page.split("\n## Codes\n", 1)[1]
    for entry in matrix.legend():
        assert f"| `{entry.code}` | {entry.kind} |" in legend
        assert all(citation.split(" — ")[1] in legend for citation in entry.citations)


def test_hostile_names_are_escaped(wasm: WasmEngine, tmp_path: Path) -> None:
    script = '<script>alert("pwned")</script> & Sons | Ltd'
    image = "<img src=x onerror=alert(1)>"
    doc = yaml.safe_load((CLUSTERS / "eu-frankfurt-1.yaml").read_text())
    doc["operator"]["name"] = script  # quoted by the EU multimodal denials
    (tmp_path / "operator.yaml").write_text(yaml.safe_dump(doc))
    doc.update(name="atlantis-1", region=image)  # quoted by every UNKNOWN_REGION denial
    (tmp_path / "region.yaml").write_text(yaml.safe_dump(doc))
    hostile = compute_matrix(load_clusters(tmp_path), Judge(wasm), DATA, date.fromisoformat(AS_OF))

    html_page = render_html(hostile)
    assert "<script" not in html_page and "<img" not in html_page
    page = parse(html_page)
    assert not page.tags & {"script", "img"}
    # Escaped, not dropped: the parser reads the names back from the attributes and the text.
    assert all(image in td["title"] for td in page.cells["cluster-atlantis-1"])
    assert any(script in td["title"] for td in page.cells["cluster-eu-frankfurt-1"])
    assert script in " ".join(page.text) and image in " ".join(page.text)

    markdown = render_markdown(hostile)
    assert "<script" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;" in markdown and "\\| Ltd" in markdown


# --- the command ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_writes_both_pages_and_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "matrix", "--clusters", str(CLUSTERS), "--out", str(out), "--as-of", AS_OF
    )
    assert code == 0, stderr
    assert stdout.split() == [str(out / "matrix.md"), str(out / "matrix.html")]
    expected = len(DATA.models) * len(list(CLUSTERS.glob("*.yaml"))) * 6
    assert re.search(rf"^{expected} decisions in \d+ ms via wasm ", stderr, re.MULTILINE), stderr
    assert sorted(p.name for p in out.iterdir()) == ["matrix.html", "matrix.md"]
    parse((out / "matrix.html").read_text())

    only_md = tmp_path / "md"
    args = ("matrix", "--clusters", str(CLUSTERS), "--out", str(only_md), "--format", "md")
    code, stdout, stderr = run_cli(monkeypatch, capsys, *args)
    assert code == 0, stderr
    assert stdout.split() == [str(only_md / "matrix.md")]
    assert [p.name for p in only_md.iterdir()] == ["matrix.md"]


@pytest.mark.slow
def test_cli_writes_into_the_state_dir_never_where_it_is_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bundle_env: dict[str, str],
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path / "state"))
    for name, value in bundle_env.items():  # the session's bundle, outside this state dir
        monkeypatch.setenv(name, value)
    code, stdout, stderr = run_cli(monkeypatch, capsys, "matrix", "--as-of", AS_OF, "--format", "md")
    assert code == 0, stderr
    assert stdout.split() == [str(tmp_path / "state" / "matrix" / "matrix.md")]  # says where it wrote
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda doc: doc["operator"].update(country="Germany"), "operator.country"),
        (lambda doc: doc.pop("region"), "region: field required"),
        (lambda doc: doc["deployments"][0].update(end_use="warfare"), "deployments[0].end_use"),
        (lambda doc: doc.update(gpu_quota="lots"), "gpu_quota"),
    ],
)
def test_cli_bad_cluster_file_exits_2_naming_file_and_field(
    change: Any,
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    shutil.copy(CLUSTERS / "usdef-east-1.yaml", clusters)
    doc = yaml.safe_load((CLUSTERS / "eu-frankfurt-1.yaml").read_text())
    change(doc)
    (clusters / "broken.yaml").write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "matrix", "--clusters", str(clusters), "--out", str(out)
    )
    assert code == 2
    assert str(clusters / "broken.yaml") in stderr and named in stderr, stderr
    assert "usdef-east-1" not in stderr
    assert stdout == "" and not out.exists()  # nothing partially written


@pytest.mark.slow
def test_cli_other_bad_input_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    (clusters / "a.yaml").write_text("name: [unclosed\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        "malformed YAML": (["--clusters", str(clusters)], [str(clusters / "a.yaml"), "malformed YAML"]),
        "no folder": (["--clusters", str(tmp_path / "nowhere")], ["--clusters", "not a folder"]),
        "empty folder": (["--clusters", str(empty)], ["no *.yaml"]),
        "bad date": (["--as-of", "1 June 2026"], ["--as-of", "YYYY-MM-DD"]),
    }
    (tmp_path / "out").mkdir()
    for case, (args, named) in cases.items():
        code, _, stderr = run_cli(monkeypatch, capsys, "matrix", "--out", str(tmp_path / "out"), *args)
        assert code == 2, case
        assert all(part in stderr for part in named), (case, stderr)
    assert list((tmp_path / "out").iterdir()) == []

    twin = tmp_path / "twins"
    twin.mkdir()
    for name in ("a.yaml", "b.yaml"):
        shutil.copy(CLUSTERS / "usdef-east-1.yaml", twin / name)
    code, _, stderr = run_cli(
        monkeypatch, capsys, "matrix", "--clusters", str(twin), "--out", str(tmp_path / "o")
    )
    assert code == 2 and f"{twin / 'b.yaml'}: name:" in stderr and str(twin / "a.yaml") in stderr, stderr


def test_cli_screens_operators_like_decide(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    current_screening_list: Path,
) -> None:
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    shutil.copy(CLUSTERS / "usdef-east-1.yaml", clusters)
    doc = yaml.safe_load((CLUSTERS / "fvey-london-1.yaml").read_text())
    doc["operator"]["name"] = "Northwind Aerospace Industries"  # listed on the sample's Entity List
    (clusters / "fvey-london-1.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("SOVEREIGN_SCREENING_LIST", str(current_screening_list))
    out = tmp_path / "out"
    code, _, stderr = run_cli(monkeypatch, capsys, "matrix", "--clusters", str(clusters), "--out", str(out))
    assert code == 0, stderr
    page = (out / "matrix.md").read_text()
    listed = page.split("\n## fvey-london-1\n", 1)[1].split("\n## ", 1)[0]
    clean = page.split("\n## usdef-east-1\n", 1)[1].split("\n## ", 1)[0]
    assert listed.count("`DENIED_PARTY`") == len(DATA.models) * len(END_USES)
    assert "DENIED_PARTY" not in clean and "✅" in clean


def test_cli_unknown_format_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run_cli(monkeypatch, capsys, "matrix", "--format", "pdf")
    assert code == 2 and "--format" in stderr and stdout == "", stderr


@pytest.mark.slow
def test_cli_unreachable_engine_writes_a_denied_matrix_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOVEREIGN_OPA_URL", f"http://127.0.0.1:{free_port()}")
    out = tmp_path / "out"
    args = ("matrix", "--clusters", str(CLUSTERS), "--out", str(out), "--format", "md")
    code, _, stderr = run_cli(monkeypatch, capsys, *args)
    assert code == 1
    assert "ENGINE_UNAVAILABLE" in stderr and "could not decide" in stderr, stderr
    page = (out / "matrix.md").read_text()
    assert "✅" not in page.split("## Declared deployments", 1)[1].split("## Codes", 1)[0]
