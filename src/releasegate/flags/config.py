"""`flags:` of a stack in releasegate.yaml: where its flags live, which flags it declares,
and what a change needs afterwards (releasegate.config.schema.StackConfig.flags)."""

# No `from __future__ import annotations`: see releasegate.config.values.
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from releasegate.config.values import CommandSpec, RelPath, StrictModel, fail
from releasegate.errors import BadInput
from releasegate.flags import values

Scalar = bool | int | float | str


class FlagDecl(StrictModel):
    """One declared flag: its type, the value that applies when no store sets it, and
    whether its value is secret (then never recorded: the ledger shows `***`)."""

    type: Literal["bool", "string", "number"] = "bool"
    default: Scalar | None = None
    description: str = ""
    secret: bool = False
    # Where it lives (default: every store of the stack); the names of `flags.<store>`.
    stores: list[Literal["dotenv", "flagd"]] | None = None
    variants: dict[str, Scalar] | None = None  # flagd: the values it may take, by name

    @model_validator(mode="after")
    def _default_of_type(self) -> Self:
        if self.default is not None:
            try:
                values.normalize(self.type, _text(self.default))
            except BadInput as exc:
                fail(f"default: {exc.message}")
        for name in self.variants or {}:
            try:
                values.check_variant(name)
            except BadInput as exc:
                fail(f"variants: {exc.message}")
        return self

    @property
    def default_text(self) -> str | None:
        if self.default is None:
            return "false" if self.type == "bool" else None
        return values.normalize(self.type, _text(self.default))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FlagsConfig(StrictModel):
    """Where the stack's flags are written on each host (paths under the stack's `dir`; a
    release's own file through `current/...`), the flags, and what applies a change."""

    dotenv: RelPath | None = None  # e.g. shared/.env (seed 003's SUPPLIER_EVAL_ENABLED)
    flagd: RelPath | None = None  # an OpenFeature flagd flag file, e.g. shared/flags.json
    # After a change: run `reload`, restart the service (the stack's restart), or nothing
    # (a flagd provider watching its file); then the stack's smoke checks.
    apply: Literal["reload", "restart", "none"] = "restart"
    reload: CommandSpec | None = None  # run in the current release on each host
    declared: Annotated[dict[str, FlagDecl], Field(min_length=1)]

    @field_validator("declared")
    @classmethod
    def _names(cls, value: dict[str, FlagDecl]) -> dict[str, FlagDecl]:
        for name in value:
            try:
                values.check_name(name, dotenv=False)
            except BadInput as exc:
                fail(exc.message)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.dotenv is None and self.flagd is None:
            fail("name where flags live: dotenv: PATH and/or flagd: PATH")
        if self.apply == "reload" and self.reload is None:
            fail("apply: reload needs a reload: command")
        for name, decl in self.declared.items():
            for store in decl.stores or []:
                if getattr(self, store) is None:
                    fail(f"declared.{name}.stores: {store} is not configured (flags.{store})")
            if "dotenv" in self.stores_of(name):
                try:
                    values.check_name(name, dotenv=True)
                except BadInput as exc:
                    fail(f"declared.{name}: {exc.message} (it lives in the dotenv file)")
        return self

    def stores_of(self, name: str) -> list[str]:
        decl = self.declared[name]
        configured = [s for s in ("dotenv", "flagd") if getattr(self, s) is not None]
        return [s for s in configured if decl.stores is None or s in decl.stores]

    def path_of(self, store: str) -> str:
        path = getattr(self, store)
        assert isinstance(path, str)
        return path
