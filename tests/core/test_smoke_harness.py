from fastapi.testclient import TestClient

from tests.factories import API, new_user


def test_register_sign_in_and_read_me(client: TestClient) -> None:
    user = new_user(client)
    response = client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["email"] == user.email


def test_tables_are_emptied_between_tests(client: TestClient) -> None:
    response = client.post(f"{API}/auth/token", data={"username": "x@example.com", "password": "y" * 8})
    assert response.status_code == 401
