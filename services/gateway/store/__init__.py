"""The gateway's state: Postgres (the audit log, webhook receipts) through SQLAlchemy Core, and Redis
(chunked uploads). The only code that speaks SQL."""
