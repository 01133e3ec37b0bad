"""One module per migration tool; `adapter_for` picks one for a stack's config."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releasegate.migrations.tools.base import Adapter, ToolContext


def adapter_for(ctx: ToolContext) -> Adapter:
    tool = ctx.tool
    if tool == "django":
        from releasegate.migrations.tools.django import DjangoAdapter

        return DjangoAdapter(ctx)
    if tool == "alembic":
        from releasegate.migrations.tools.alembic import AlembicAdapter

        return AlembicAdapter(ctx)
    if tool == "prisma":
        from releasegate.migrations.tools.prisma import PrismaAdapter

        return PrismaAdapter(ctx)
    from releasegate.migrations.tools.sqlfolder import SqlFolderAdapter

    return SqlFolderAdapter(ctx)
