"""Relational metadata: models, the database handle, migrations."""
