"""The exception hierarchy, in one place.

`UserError` and its subclasses are mistakes a user can make (bad input, a missing model, a bad
option): the CLI prints their message as one line and exits with code 2. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "BenchmarkError",
    "ClusterError",
    "CodeduelError",
    "CostLimitReached",
    "ModelError",
    "ModelFileError",
    "ModelUnusableError",
    "OptionError",
    "SandboxError",
    "StoreError",
    "UnsafeSandboxError",
    "UserError",
]


class CodeduelError(Exception):
    """Base of every error codeduel raises on purpose."""


class UserError(CodeduelError):
    """Something the user can fix; reported as one sentence with exit code 2."""


class OptionError(UserError):
    """An unknown or invalid option, model spec or CLI value."""


class BenchmarkError(UserError):
    """A benchmark or task/sample file that cannot be read or does not fit its schema."""


class ModelFileError(UserError):
    """A model file that is missing, incomplete or does not match its checksum."""


class StoreError(UserError):
    """The run store cannot be opened or does not hold what was asked for."""


class UnsafeSandboxError(UserError):
    """The sandbox here lacks isolation layers that untrusted code must not run without."""


class ClusterError(UserError):
    """The cluster lost every node that runs programs: the run stops; what is stored stays,
    and `--resume` continues once nodes are back."""


class ModelError(CodeduelError):
    """A model call failed after its retries."""


class ModelUnusableError(ModelError, UserError):
    """A provider that cannot work as configured (a rejected API key, an unknown model, an
    architecture the engine refuses): every call would fail the same way, so the run stops at
    once with this one line instead of storing a model error for each sample."""


class CostLimitReached(CodeduelError):
    """A cloud call not sent: it could pass the run's `--cost-limit`. Its sample stays unsent
    (not an error), for `--resume --cost-limit HIGHER`."""


class SandboxError(CodeduelError):
    """The sandbox itself failed (not the code it ran)."""
