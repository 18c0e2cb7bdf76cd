"""SWR management API v2 and the small IAM subset the SDK needs."""
