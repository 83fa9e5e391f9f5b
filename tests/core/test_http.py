"""Location headers: resolved once per route, identical to what `url_for` gives."""

import uuid

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.core.http import location_of


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
