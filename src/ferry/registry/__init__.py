"""The OCI Distribution API v1.1 over aiohttp: thin handlers over ferry.images."""
