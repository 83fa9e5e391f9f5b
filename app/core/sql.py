"""SQL text built from user input: LIKE patterns whose wildcards are taken literally."""

LIKE_ESCAPE = "\\"


def contains_pattern(fragment: str) -> str:
    """A LIKE pattern matching `fragment` anywhere, with `%`, `_` and `\\` taken literally.

    Use it with `escape=LIKE_ESCAPE`: user input must never act as a wildcard.
    """
    escaped = (
        fragment.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"
