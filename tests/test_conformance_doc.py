"""docs/conformance.md: every row of the service tables names a test, and every test it names exists."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

DOC = ROOT / "docs" / "conformance.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def rows() -> list[list[str]]:
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and not set(cells[0]) <= {"-"} and cells[0] != "Behaviour":
            found.append(cells)
    return found


def test_every_service_behaviour_names_a_test():
    table = rows()
    assert len(table) >= 40
    missing = [cells[0] for cells in table if not REFERENCE.search(cells[3])]
    assert not missing, missing


def test_every_named_test_exists():
    defined: dict[str, set[str]] = {}
    for path, name in REFERENCE.findall(DOC.read_text(encoding="utf-8")):
        if path not in defined:
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            defined[path] = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in defined[path], f"{path}::{name} is named in docs/conformance.md but does not exist"


def test_undocumented_behaviours_are_said_to_be():
    undocumented = [cells for cells in rows() if "not documented" in cells[1]]
    assert len(undocumented) >= 10
    switches = (
        "tag_in_progress_refused",
        "deleted_listing_seconds",
        "snapshot_release_seconds",
        "accept_late_answers",
        "invocation_type",
        "redeliver_after",
        "missing_image_delete_ignored",
        "source_delete_fails_copies",
    )
    text = DOC.read_text(encoding="utf-8")
    assert all(f"`{switch}`" in text for switch in switches)
