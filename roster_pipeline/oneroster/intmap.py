"""A compact int64 → int64 map for a million keys: sorted numpy arrays, read and written a page at a time.

A Python dict of a million entries costs ~100 bytes each (more with string keys); two sorted int64
arrays cost 16.  Lookups and writes come in batches (a page of records), so each batch is one
vectorized ``searchsorted`` instead of a million interpreted operations.

Inserting into one big sorted array copies all of it, once per batch: at a million keys that is the
dominant cost.  So new keys go to a small sorted run first, and the run is merged into the main arrays
only when it has grown to an eighth of them; each key is then copied a bounded number of times
(amortized), and the run's own inserts stay small.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int64s = npt.NDArray[np.int64]

_MIN_RUN = 65_536  # the recent run merges into the main one past max(_MIN_RUN, main / 8) keys


class SortedInt64Map:
    """int64 keys to int64 values; ``missing`` is returned for absent keys, so it must never be stored."""

    def __init__(self, missing: int) -> None:
        self.missing = missing
        self._main = _Run()
        self._recent = _Run()

    def __len__(self) -> int:
        return len(self._main.keys) + len(self._recent.keys)

    @property
    def nbytes(self) -> int:
        return self._main.nbytes + self._recent.nbytes

    def get_many(self, keys: Int64s) -> Int64s:
        """The value of each key (in the given order), ``missing`` where absent."""
        found = np.full(len(keys), self.missing, dtype=np.int64)
        if not len(keys) or not len(self):
            return found
        order = np.argsort(keys)  # sorted needles walk the arrays in order: far fewer cache misses
        ordered = keys[order]
        for run in (self._main, self._recent):
            hit, values = run.find(ordered)
            found[order[hit]] = values
        return found

    def put_many(self, keys: Int64s, values: Int64s) -> None:
        """Set each key's value, overwriting a present key; the keys must be distinct."""
        if not len(keys):
            return
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        new = np.ones(len(keys), dtype=bool)
        for run in (self._main, self._recent):
            new &= ~run.overwrite(keys, values)
        if new.any():
            self._recent.insert(keys[new], values[new])
        if len(self._recent.keys) > max(_MIN_RUN, len(self._main.keys) // 8):
            self._main.insert(self._recent.keys, self._recent.values)
            self._recent = _Run()


class _Run:
    """One sorted run: keys ascending, values aligned."""

    def __init__(self) -> None:
        self.keys: Int64s = np.empty(0, dtype=np.int64)
        self.values: Int64s = np.empty(0, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.values.nbytes)

    def _positions(self, ordered: Int64s) -> tuple[Int64s, npt.NDArray[np.bool_]]:
        """For sorted ``ordered``: where each would sit, and whether it is there."""
        at = np.searchsorted(self.keys, ordered)
        hit = np.zeros(len(ordered), dtype=bool)
        inside = at < len(self.keys)
        hit[inside] = self.keys[at[inside]] == ordered[inside]
        return at, hit

    def find(self, ordered: Int64s) -> tuple[npt.NDArray[np.bool_], Int64s]:
        if not len(self.keys):
            return np.zeros(len(ordered), dtype=bool), np.empty(0, dtype=np.int64)
        at, hit = self._positions(ordered)
        return hit, self.values[at[hit]]

    def overwrite(self, ordered: Int64s, values: Int64s) -> npt.NDArray[np.bool_]:
        """Overwrite the keys present; return which were."""
        if not len(self.keys):
            return np.zeros(len(ordered), dtype=bool)
        at, hit = self._positions(ordered)
        self.values[at[hit]] = values[hit]
        return hit

    def insert(self, ordered: Int64s, values: Int64s) -> None:
        """Insert sorted keys that are not present (values aligned)."""
        at = np.searchsorted(self.keys, ordered)
        self.keys = np.insert(self.keys, at, ordered)
        self.values = np.insert(self.values, at, values)
