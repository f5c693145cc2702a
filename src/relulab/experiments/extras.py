"""The public name ``relulab.experiments.MissingExtraError`` (code that catches it keeps working); the
error and the import helper live in :mod:`relulab.core.extras`, where relulab itself imports them."""

from relulab.core.extras import EXTRAS, MissingExtraError, require

__all__ = ["EXTRAS", "MissingExtraError", "require"]
