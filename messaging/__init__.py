"""The one messaging layer every part shares (services and trainers alike): connecting to NATS as a role,
the streams and consumers in place, and taking messages. It imports nothing from `services/`, so a trainer
image needs no FastAPI, SQLAlchemy or Postgres."""
