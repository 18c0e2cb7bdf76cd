"""What Ferry tells its operators: metrics (and, from other modules, logs).

A base-layer package: it imports only the standard library and prometheus_client, so every
layer may import it, and it imports no other ferry package.
"""
