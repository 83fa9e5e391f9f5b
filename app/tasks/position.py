"""Fractional order keys: a key between any two keys, so moving a task rewrites only that task.

This is the "fractional indexing" scheme (as in Figma and rocicorp/fractional-indexing): a key
is an integer part (a length-prefix letter, then base-62 digits) and an optional fraction.
Appending at the end increments the integer part, so keys stay short when tasks are added in
order; inserting between two neighbours takes the midpoint of their fractions, which grows by
about one character per six insertions at the same spot. Keys compare as plain byte strings
(the column uses the "C" collation on PostgreSQL), never with locale rules.
"""

import secrets

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(DIGITS)
ZERO = DIGITS[0]
# The smallest integer part; a key equal to it would leave no room before it.
SMALLEST_INTEGER = "A" + ZERO * 26
FIRST_KEY = "a" + ZERO


# Random digits after a key written by a request: concurrent writes that read the same
# neighbours then write different keys (a clash, which the unique index refuses and the
# request's transaction runs again for, takes 62**4 to 1 odds).
JITTER_DIGITS = 4


class InvalidOrderKey(ValueError):
    """A key that this scheme could not have produced, or a pair given out of order."""


def _midpoint(a: str, b: str | None) -> str:
    """A fraction strictly between fractions `a` and `b` (`b` None means "no upper bound")."""
    if b is not None and a >= b:
        raise InvalidOrderKey(f"{a!r} is not before {b!r}")
    if a.endswith(ZERO) or (b is not None and b.endswith(ZERO)):
        raise InvalidOrderKey("a fraction must not end in the zero digit")
    if b is not None:
        # Copy the common prefix, then decide on the first digit that differs.
        n = 0
        while n < len(b) and (a[n] if n < len(a) else ZERO) == b[n]:
            n += 1
        if n > 0:
            return b[:n] + _midpoint(a[n:], b[n:])
    digit_a = DIGITS.index(a[0]) if a else 0
    digit_b = DIGITS.index(b[0]) if b is not None else BASE
    if digit_b - digit_a > 1:
        return DIGITS[(digit_a + digit_b + 1) // 2]
    if b is not None and len(b) > 1:
        return b[:1]
    return DIGITS[digit_a] + _midpoint(a[1:], None)


def _integer_length(head: str) -> int:
    if "a" <= head <= "z":
        return ord(head) - ord("a") + 2
    if "A" <= head <= "Z":
        return ord("Z") - ord(head) + 2
    raise InvalidOrderKey(f"invalid order key head {head!r}")


def _split(key: str) -> tuple[str, str]:
    if not key:
        raise InvalidOrderKey("empty order key")
    length = _integer_length(key[0])
    if length > len(key):
        raise InvalidOrderKey(f"order key {key!r} is too short")
    integer, fraction = key[:length], key[length:]
    if key == SMALLEST_INTEGER or fraction.endswith(ZERO):
        raise InvalidOrderKey(f"invalid order key {key!r}")
    if any(ch not in DIGITS for ch in key[1:]):
        raise InvalidOrderKey(f"invalid character in order key {key!r}")
    return integer, fraction


def _increment_integer(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in reversed(range(len(digits))):
        d = DIGITS.index(digits[i]) + 1
        if d < BASE:
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = ZERO
    # Every digit carried over: the integer part needs one more digit (or one fewer, below "a").
    if head == "Z":
        return "a" + ZERO
    if head == "z":
        return None
    new_head = chr(ord(head) + 1)
    if new_head > "a":
        digits.append(ZERO)
    else:
        digits.pop()
    return new_head + "".join(digits)


def _decrement_integer(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for i in reversed(range(len(digits))):
        d = DIGITS.index(digits[i]) - 1
        if d >= 0:
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = DIGITS[-1]
    if head == "a":
        return "Z" + DIGITS[-1]
    if head == "A":
        return None
    new_head = chr(ord(head) - 1)
    if new_head < "Z":
        digits.append(DIGITS[-1])
    else:
        digits.pop()
    return new_head + "".join(digits)


def key_between(a: str | None, b: str | None) -> str:
    """A key strictly after `a` and strictly before `b`; None means the open end."""
    if a is not None:
        _split(a)
    if b is not None:
        _split(b)
    if a is not None and b is not None and a >= b:
        raise InvalidOrderKey(f"{a!r} is not before {b!r}")
    if a is None:
        if b is None:
            return FIRST_KEY
        integer_b, fraction_b = _split(b)
        if integer_b == SMALLEST_INTEGER:
            return integer_b + _midpoint("", fraction_b)
        if integer_b < b:
            return integer_b
        decremented = _decrement_integer(integer_b)
        if decremented is None:
            raise InvalidOrderKey("no key before the smallest key")
        return decremented
    integer_a, fraction_a = _split(a)
    if b is None:
        incremented = _increment_integer(integer_a)
        return integer_a + _midpoint(fraction_a, None) if incremented is None else incremented
    integer_b, fraction_b = _split(b)
    if integer_a == integer_b:
        return integer_a + _midpoint(fraction_a, fraction_b)
    incremented = _increment_integer(integer_a)
    if incremented is None:
        raise InvalidOrderKey("integer part overflow")
    if incremented < b:
        return incremented
    return integer_a + _midpoint(fraction_a, None)


def keys_after(a: str | None, count: int) -> list[str]:
    """`count` increasing keys after `a` (appending a batch at the end of a list)."""
    keys: list[str] = []
    for _ in range(count):
        a = key_between(a, None)
        keys.append(a)
    return keys


def _jitter() -> str:
    # Never ending in the zero digit: the result must be a valid fraction.
    return "".join(secrets.choice(DIGITS) for _ in range(JITTER_DIGITS - 1)) + secrets.choice(
        DIGITS[1:]
    )


def jitter(key: str, below: str | None = None) -> str:
    """`key` with random digits at its end (still before `below`, the next key, if given),
    so that two writers placing a task at the same spot at once get different keys.

    The digits are added at the write: the length that decides a rebalance is the key's own.
    """
    candidate = key + _jitter()
    return candidate if below is None or candidate < below else key
