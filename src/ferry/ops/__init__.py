"""Operating a region over HTTP: request metrics, /metrics, /healthz and /readyz."""
