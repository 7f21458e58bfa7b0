"""The warehouse's exceptions, in a module of their own so every warehouse module can raise them."""

from __future__ import annotations


class WarehouseError(RuntimeError):
    """An import is used in a way its state does not allow (unknown, already published, ...)."""
