"""Alembic's entry for the room's database: run only by ``room_db.open_room``, on the connection it passes (in its
write transaction), with digit-lab's own version table so a database shared with Optuna keeps the two apart."""

from alembic import context

context.configure(connection=context.config.attributes["connection"],
                  version_table=context.config.attributes["version_table"])
with context.begin_transaction():
    context.run_migrations()
