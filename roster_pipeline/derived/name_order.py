"""The order in which a person expects to read a list of names: the ``display_order`` of class teachers.

Infinite Campus lists a class's teachers "in alphabetical order". Databases disagree on what that means
(SQLite compares code points, Postgres follows the server's locale), so the order is computed in Python
with one key:

* accents do not count: ``Ångström`` sorts with the A's, ``Émile`` with the E's (Unicode NFKD, then the
  combining marks dropped); letters NFKD leaves alone are folded by hand (``ø`` → o, ``ł`` → l, ``æ`` → ae);
* case does not count (``casefold``, so ``ß`` reads ``ss``);
* spaces and punctuation do not count: ``de la Cruz`` sorts as ``delacruz`` (with the D's), ``O'Neil``
  as ``oneil``, next to ``Oneil``; ``Smith-Jones`` as ``smithjones``.

This is the English-speaking (US school) convention; a Swedish reader would put Å after Z, which no
district asked for.  A missing name sorts after every present one, so a record without a name never
tops a list.
"""

from __future__ import annotations

import unicodedata

# Letters that NFKD does not decompose into a base letter plus marks, folded to what an English reader
# alphabetises them as.
_FOLDS = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "ð": "d",
        "Ð": "d",
        "þ": "th",
        "Þ": "th",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "ı": "i",
        "ħ": "h",
        "Ħ": "h",
    }
)


def name_key(name: str | None) -> str:
    """The comparable form of one name: no accents, no case, letters and digits only."""
    if not name:
        return ""
    decomposed = unicodedata.normalize("NFKD", name.translate(_FOLDS))
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def person_sort_key(family_name: str | None, given_name: str | None, sourced_id: str) -> tuple[object, ...]:
    """Family name, then given name, then sourcedId (exact, so equal names still have one fixed order).

    A name without any letter (missing, blank, punctuation only) sorts after the named ones."""
    family, given = name_key(family_name), name_key(given_name)
    return (family == "", family, given == "", given, sourced_id)
