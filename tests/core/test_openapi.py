"""The committed API contract: `openapi.json` is the app's document, and valid OpenAPI 3.1."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from jsonschema_path import SchemaPath
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from app.cli import OPENAPI_FILE, main
from app.core.openapi import openapi_document
from tests.conftest import ROOT

REGENERATE = (
    "openapi.json differs from the app's OpenAPI document: run "
    "`.venv/bin/tasks-api export-openapi` and review the diff"
)


def committed() -> Any:
    return json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))


def differences(expected: Any, actual: Any, pointer: str = "") -> Iterator[str]:
    """JSON pointers where two documents differ, the deepest common place of each change."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(key for key in actual if key not in expected)]:
            place = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key not in actual:
                yield f"{place} (removed from the app)"
            elif key not in expected:
                yield f"{place} (new in the app)"
            else:
                yield from differences(expected[key], actual[key], place)
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (old, new) in enumerate(zip(expected, actual, strict=True)):
            yield from differences(old, new, f"{pointer}/{index}")
    elif expected != actual:
        yield pointer or "/"


def assert_is_committed(document: dict[str, Any]) -> None:
    changed = list(differences(committed(), document))
    listed = "\n  ".join(changed[:20]) + ("\n  ..." if len(changed) > 20 else "")
    assert not changed, f"{REGENERATE}; changed:\n  {listed}"


def test_committed_file_is_at_the_repository_root() -> None:
    assert OPENAPI_FILE == ROOT / "openapi.json"
    assert (ROOT / "pyproject.toml").is_file()
    assert OPENAPI_FILE.is_file(), REGENERATE


def test_the_apps_document_is_the_committed_one() -> None:
    assert_is_committed(openapi_document())


def test_the_document_is_valid_openapi_3_1() -> None:
    document = committed()
    assert document["openapi"].startswith("3.1."), document["openapi"]
    errors = [
        str(error).split("\n", 1)[0]
        for error in OpenAPIV31SpecValidator(SchemaPath.from_dict(document)).iter_errors()
    ]
    assert not errors, "openapi.json is not valid OpenAPI 3.1:\n  " + "\n  ".join(errors[:20])
    validate(document, cls=OpenAPIV31SpecValidator)  # raises on the first error


def test_the_validator_would_catch_an_invalid_document() -> None:
    document = committed()
    document["components"]["schemas"]["Problem"]["type"] = "problem"  # not a JSON Schema type
    assert list(OpenAPIV31SpecValidator(SchemaPath.from_dict(document)).iter_errors())


def test_export_openapi_writes_exactly_the_committed_file(tmp_path: Path) -> None:
    output = tmp_path / "openapi.json"
    main(["export-openapi", "--output", str(output)])
    assert output.read_bytes() == OPENAPI_FILE.read_bytes(), REGENERATE


def test_export_openapi_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    main(["export-openapi", "--output", "-"])
    assert capsys.readouterr().out == OPENAPI_FILE.read_text(encoding="utf-8")


def test_the_document_does_not_depend_on_this_machines_settings(app: FastAPI) -> None:
    # The tests' app: another environment, secret, database and throttles.
    assert_is_committed(app.openapi())


def test_the_document_is_the_same_without_docs_or_with_cors(
    make_app: Callable[..., FastAPI],
) -> None:
    # DOCS_ENABLED=false only stops serving /openapi.json; the document is still built.
    private = make_app(DOCS_ENABLED=False, CORS_ORIGINS=["https://app.example.com"])
    assert private.openapi_url is None
    assert_is_committed(private.openapi())
