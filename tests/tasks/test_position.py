"""app/tasks/position.py: the order keys' arithmetic (no database)."""

import random

import pytest

from app.tasks import position


def test_order_keys_stay_ordered_under_random_inserts() -> None:
    rng = random.Random(4)
    keys: list[str] = []
    for _ in range(2000):
        index = rng.randrange(len(keys) + 1)
        low = keys[index - 1] if index else None
        high = keys[index] if index < len(keys) else None
        key = position.key_between(low, high)
        assert low is None or low < key
        assert high is None or key < high
        keys.insert(index, key)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    appended = position.keys_after(None, 5000)
    assert appended == sorted(appended)
    assert max(len(key) for key in appended) <= 4  # appending keeps keys short


@pytest.mark.parametrize(
    ("low", "high"), [("a1", "a0"), ("a0", "a0"), ("", None), ("a00", None), ("!x", None)]
)
def test_invalid_order_keys_are_refused(low: str, high: str | None) -> None:
    with pytest.raises(position.InvalidOrderKey):
        position.key_between(low, high)


def test_keys_before_the_first_and_between_integers() -> None:
    assert position.key_between(None, "a0") < "a0"
    assert "a0" < position.key_between("a0", "a1") < "a1"
    assert "Zz" < position.key_between("Zz", "a0") < "a0"
    assert position.key_between("a0", None) == "a1"
