"""Image content services: repositories, blobs, uploads, manifests, tags, referrers.

Shared by the registry API, the management API and the sync engine; no HTTP in here.
"""
