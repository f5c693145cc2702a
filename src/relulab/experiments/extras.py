"""Optional extras: the error and the import helper live in :mod:`relulab.core.extras` (engines
outside the experiments use them too); their names stay importable from here."""

from relulab.core.extras import EXTRAS, MissingExtraError, require

__all__ = ["EXTRAS", "MissingExtraError", "require"]
