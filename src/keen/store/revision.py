"""The schema revision this keen is written for (the newest migration). Kept apart from the
engine so that readers without SQLAlchemy can check a file's schema; a test checks it matches
Alembic's head so it cannot drift."""

HEAD_REVISION = "0005"
