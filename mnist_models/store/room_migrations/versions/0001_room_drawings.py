"""The room's drawings: one row per digit a visitor confirmed or corrected, with what the models answered.

A migration is a frozen copy of the schema at its revision: it names its columns and rules here rather than
importing today's from ``room_db``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "room_drawings",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("input_kind", sa.String(16), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("original_png", sa.LargeBinary(), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("checkpoints", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dataset", sa.String(16), nullable=False),
        sa.CheckConstraint("label BETWEEN 0 AND 9", name="ck_room_drawings_label"),
        sa.CheckConstraint("input_kind IN ('canvas', 'upload', 'camera', 'import')",
                           name="ck_room_drawings_input_kind"),
        sa.CheckConstraint("status IN ('kept', 'held', 'reviewed')", name="ck_room_drawings_status"),
    )
    op.create_index("ix_room_drawings_session_created", "room_drawings", ["session_id", "created"])
    op.create_index("ix_room_drawings_status", "room_drawings", ["status"])


def downgrade() -> None:
    op.drop_table("room_drawings")
