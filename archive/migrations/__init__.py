"""Alembic migrations of the archive, applied by `archive.store.ArchiveStore.migrate`."""
