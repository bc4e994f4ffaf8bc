"""usage records; budgets on users and teams

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("teams", "users"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("max_budget", sa.Float(), nullable=True))
            batch.add_column(sa.Column("budget_period", sa.String(length=16), nullable=True))
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("team_id", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("deployment", sa.String(length=256), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("price_known", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("route", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("usage_records") as batch:
        batch.create_index("ix_usage_records_request_id", ["request_id"])
        batch.create_index("ix_usage_records_created_at", ["created_at"])
        batch.create_index("ix_usage_records_model", ["model"])
        batch.create_index("ix_usage_key_created", ["key_id", "created_at"])
        batch.create_index("ix_usage_team_created", ["team_id", "created_at"])
        batch.create_index("ix_usage_user_created", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("usage_records")
    for table in ("users", "teams"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("budget_period")
            batch.drop_column("max_budget")
