"""Webhooks: per-organization HTTP targets that receive signed CloudEvents, delivered from a
transactional outbox (README "Webhooks")."""
