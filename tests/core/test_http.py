"""Location headers (resolved once per route, identical to `url_for`) and If-Match parsing."""

import uuid

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import MalformedPrecondition
from app.core.http import (
    ENTITY_TAGS_PATTERN,
    NO_VERSION,
    if_match_passes,
    if_match_version,
    if_none_match_matches,
    location_of,
)


def test_location_of_matches_url_for_for_every_id_and_root_path() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def read_thing(thing_id: uuid.UUID) -> None:
        """A resource route."""

    @app.get("/probe/{thing_id}")
    async def probe(thing_id: uuid.UUID, request: Request) -> dict[str, str]:
        return {
            "ours": location_of(request, "read_thing", thing_id=thing_id),
            "url_for": request.url_for("read_thing", thing_id=thing_id).path,
        }

    for root_path in ("", "/behind-a-proxy"):
        client = TestClient(app, root_path=root_path)
        for _ in range(3):
            thing_id = uuid.uuid4()
            answer = client.get(f"/probe/{thing_id}").json()
            assert answer["ours"] == answer["url_for"]
            assert answer["ours"].endswith(f"/things/{thing_id}")
            assert answer["ours"].startswith(f"{root_path}/things/")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("*", None),
        ('"v3"', 3),
        (' "v3" , W/"v4"', 3),
        ('"v3", "v3"', 3),
        ('W/"v3"', NO_VERSION),
        ('"v03"', NO_VERSION),
        ('"v"', NO_VERSION),
        ('"v-1"', NO_VERSION),
        ('"v\u00b3"', NO_VERSION),  # a superscript three: str.isdigit() says yes
        ('"v2147483648"', NO_VERSION),
    ],
)
def test_if_match_version_names_the_one_version_a_write_may_find(
    header: str | None, expected: int | None
) -> None:
    assert if_match_version(header) == expected
    # The same decision as the check made after reading the row.
    for version in (1, 3, 4):
        passes = if_match_passes(header, version)
        assert passes == (expected is None or expected == version), (header, version)


def test_if_match_version_leaves_several_versions_to_the_row_check() -> None:
    with pytest.raises(ValueError, match="several"):
        if_match_version('"v3", "v4"')


@pytest.mark.parametrize(
    "header",
    ["v1", '"v1', "W/v1", '"v1" "v2"', "", ",", '"v1" x', "**", '*, "v1"', "garbage", '"v\u0663"'],
)
def test_a_header_that_is_not_entity_tags_is_malformed(header: str) -> None:
    with pytest.raises(MalformedPrecondition):
        if_match_passes(header, 1)
    with pytest.raises(MalformedPrecondition):
        if_none_match_matches(header, 1)


@pytest.mark.parametrize(
    ("header", "passes"),
    [('"v1"', True), (' "v2" , "v1" ', True), ('W/"v1"', False), ('"a,b", "v1"', True),
     ('"v2",,"v1"', True), ("*", True), ('"x"', False)],
)  # fmt: skip
def test_entity_tag_lists_follow_rfc_9110(header: str, passes: bool) -> None:
    assert if_match_passes(header, 1) is passes


@given(st.from_regex(ENTITY_TAGS_PATTERN, fullmatch=True).filter(lambda h: len(h) <= 1024))
def test_every_header_the_document_allows_is_parsed(header: str) -> None:
    """The published pattern never admits what the parser refuses (a fuzzer would send it)."""
    if_match_passes(header, 1)
    if_none_match_matches(header, 1)
