"""A new password's strength: zxcvbn's estimate, with the account's own details refused.

Pure computation, so both the edge's requests (on a thread, ``passwords.Passwords``) and its
settings (the first admin's password, checked at start-up) judge passwords one way.
"""

from __future__ import annotations

import zxcvbn

from conveyor.api.errors import Unprocessable

# zxcvbn's time grows with the square of the length (measured on two cores: 5 ms at 32
# characters, up to 23 ms at 64, 32 ms at 72, and it refuses longer ones), so a password is
# judged by its first 64 characters: a long one whose beginning is easy to guess is refused.
JUDGED_CHARACTERS = 64
_SCORES = ("very easy", "easy", "somewhat easy", "hard", "very hard")
# An e-mail address's local part or a name this long is refused anywhere in a password
# (spaces ignored); a shorter one ("Ada") is left to zxcvbn, which counts it as a known word.
MIN_DETAIL_LENGTH = 4
_HOLDS_DETAILS = "Parts of it are your e-mail address or name."
# zxcvbn's own suggestion, for the scores it gives no feedback on.
_ADD_WORDS = "Add another word or two. Uncommon words are better."


def check_strength(password: str, email: str, name: str, min_score: int) -> None:
    """Refuse a new password that holds the account's e-mail address or name, or is easy
    to guess, saying how to choose a better one. The least length is the request
    model's (``NewPassword``).

    zxcvbn estimates the guesses a password takes, with the parts of the account's
    e-mail address and name among the words an attacker tries first.
    """
    local_part, _, domain = email.lower().partition("@")
    whole_name = "".join(name.lower().split())
    if any(
        len(detail) >= MIN_DETAIL_LENGTH and detail in "".join(password.lower().split())
        for detail in (local_part, whole_name)
    ):
        raise Unprocessable(
            "the password must not contain your e-mail address or name; choose words of your own"
        )
    details = [email, local_part, *domain.split("."), whole_name, *name.split()]
    verdict = zxcvbn.zxcvbn(password[:JUDGED_CHARACTERS], details)
    score = int(verdict["score"])
    if score >= min_score:
        return
    advice = [
        str(verdict["feedback"]["warning"]),
        *map(str, verdict["feedback"]["suggestions"]),
    ]
    if any(match.get("dictionary_name") == "user_inputs" for match in verdict["sequence"]):
        advice.insert(0, _HOLDS_DETAILS)
    advice = [sentence for sentence in advice if sentence] or [_ADD_WORDS]
    raise Unprocessable(
        f"the password is too easy to guess ({_SCORES[score]}; it must be "
        f"{_SCORES[min_score]} or harder): {' '.join(advice)}"
    )
