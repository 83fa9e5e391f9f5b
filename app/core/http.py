"""Conditional requests (ETag, If-Match, If-None-Match) and Location headers.

Tasks, projects and labels share one ETag format, `"v<version>"` (strong, quoted), built from
the row's `version`, which grows by one on every change. The helpers here are the only place
that format is written or parsed.
"""

import re
import uuid
from typing import Annotated

from fastapi import Header, Request
from pydantic import WithJsonSchema

from app.core.errors import MalformedPrecondition, PreconditionFailed

# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
# `*` or a list of entity tags, as the document publishes it. Published only: the header is
# parsed by `_tags`, so that a malformed one is our 400 `malformed_precondition`, not a 422.
ENTITY_TAGS_PATTERN = rf"^[ \t]*(?:\*|{_TAG}(?:[ \t]*,[ \t]*{_TAG})*)[ \t]*$"

# A header is absent or a string, never null: the document says so (no `null` variant).
_ENTITY_TAGS = WithJsonSchema({"type": "string", "maxLength": 1024, "pattern": ENTITY_TAGS_PATTERN})
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1024,
        description='Apply only if the ETag still matches (e.g. `"v3"`); 412 otherwise.',
    ),
    _ENTITY_TAGS,
]
IfNoneMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        max_length=1024,
        description="Answer 304 with no body when this ETag is still current.",
    ),
    _ENTITY_TAGS,
]


class VersionMismatch(PreconditionFailed):
    code = "version_mismatch"
    detail = "The resource has changed since you read it; read it again and retry."

    def __init__(self, current_version: int) -> None:
        super().__init__(
            extra={"current_version": current_version, "current_etag": etag_for(current_version)}
        )


def etag_for(version: int) -> str:
    """The strong ETag of a row at `version`."""
    return f'"v{version}"'


# A list element: optional white space, an entity tag (or nothing: empty elements are allowed),
# optional white space, then a comma or the end.
_LIST_ELEMENT = re.compile(r'[ \t]*((?:W/)?"[\x21\x23-\x7e\x80-\xff]*")?[ \t]*(?:,|$)')


def _tags(header: str) -> list[str]:
    """The entity tags of an If-Match / If-None-Match list; MalformedPrecondition (400) if the
    header is neither `*` nor such a list (a client bug, not a changed resource)."""
    if header.strip(" \t") == "*":
        return ["*"]
    tags: list[str] = []
    position = 0
    while position < len(header):
        element = _LIST_ELEMENT.match(header, position)
        if element is None or element.end() == position:
            tags = []
            break
        if element.group(1):
            tags.append(element.group(1))
        position = element.end()
    if not tags:
        raise MalformedPrecondition(
            'Send `*` or entity tags as the ETag header gives them, quotes included (`"v3"`).'
        )
    return tags


def if_match_passes(header: str | None, version: int) -> bool:
    """Whether an `If-Match` header allows a write to the row at `version` (absent: it does).

    If-Match uses strong comparison (RFC 9110 13.1.1), so a weak `W/` tag never matches.
    """
    if header is None:
        return True
    current = etag_for(version)
    return any(tag == "*" or tag == current for tag in _tags(header))


def check_if_match(header: str | None, version: int) -> None:
    """Raise VersionMismatch (412, with the current version) unless `If-Match` allows the write."""
    if not if_match_passes(header, version):
        raise VersionMismatch(version)


# A version no row ever has (versions start at 1): the If-Match of a write that cannot pass.
NO_VERSION = 0
# Versions are 32-bit integers in the database; a larger number in a tag can never match.
_MAX_VERSION = 2**31 - 1


def if_match_version(header: str | None) -> int | None:
    """The one version an `If-Match` header allows a write at, for a check inside the write.

    None: any version (no header, or `*`). NO_VERSION: none can match (only weak or foreign
    tags). Raises ValueError when the header names several of our tags: `if_match_passes`
    must then decide, after the row is read.
    """
    if header is None:
        return None
    tags = _tags(header)
    if "*" in tags:
        return None
    versions = {version for tag in tags if (version := _version_of(tag)) is not None}
    if len(versions) > 1:
        raise ValueError("several versions")
    return versions.pop() if versions else NO_VERSION


def _version_of(tag: str) -> int | None:
    """The version in one of our strong tags, exactly as `etag_for` writes it (else None)."""
    digits = tag[2:-1]
    if not (tag.startswith('"v') and tag.endswith('"') and digits.isascii() and digits.isdigit()):
        return None
    if len(digits) > 10 or etag_for(int(digits)) != tag or int(digits) > _MAX_VERSION:
        return None
    return int(digits)


def if_none_match_matches(header: str | None, version: int) -> bool:
    """Whether a GET's `If-None-Match` names the current representation (answer 304).

    If-None-Match uses weak comparison (RFC 9110 13.1.2): `W/"v3"` matches `"v3"`.
    """
    if header is None:
        return False
    current = etag_for(version)
    return any(tag == "*" or tag.removeprefix("W/") == current for tag in _tags(header))


# Location headers: `url_for` walks the whole route table on every call, so the path of each
# resource route is resolved once (per route and root path) and filled in after that.
_PLACEHOLDER = uuid.UUID(int=0)
_LOCATIONS: dict[tuple[str, str, str], str] = {}


def location_of(request: Request, route_name: str, **path_params: uuid.UUID) -> str:
    """The path of `route_name` for one resource id, as `request.url_for(...).path` gives it."""
    ((param, value),) = path_params.items()
    key = (request.scope.get("root_path", ""), route_name, param)
    template = _LOCATIONS.get(key)
    if template is None:
        path = request.url_for(route_name, **{param: str(_PLACEHOLDER)}).path
        template = _LOCATIONS[key] = path.replace(str(_PLACEHOLDER), "{}")
    return template.format(value)
