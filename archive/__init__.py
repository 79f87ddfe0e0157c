"""What is remembered: every scored post and dead letter, in SQLite or PostgreSQL behind one
URL (`store.py`), with Alembic migrations (`migrations/`), the sink that archives behind
the stream (`sink.py`) and the Kafka archive consumer (`consumer.py`).

Imports run one way: `app` → `archive` → `streaming`; nothing here knows the web app.
"""
