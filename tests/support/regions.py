"""Several real Ferry regions on loopback, peers wired both ways, like `ferry dev`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import ADMIN_PASSWORD, FerryServer, free_port

ACCESS_KEY = "TESTREGIONSAK0000001"
SECRET_KEY = "test-regions-secret-key-0123456789abcdef"
PROJECT_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class Regions:
    servers: dict[str, FerryServer] = field(default_factory=dict)

    def __getitem__(self, region: str) -> FerryServer:
        return self.servers[region]

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def make_regions(
    root: Path,
    ids: list[str],
    extra_env: dict[str, str] | None = None,
    region_env: dict[str, dict[str, str]] | None = None,
    peer_urls: dict[tuple[str, str], str] | None = None,
    peer_fields: dict[tuple[str, str], dict[str, object]] | None = None,
) -> Regions:
    """Starts one server per region id; every region lists all the others as peers.

    All share the admin user, password, AK/SK and project id, as `ferry dev` does. `extra_env`
    goes to every region, `region_env[id]` to that region only. `peer_urls[(region, peer)]` is
    the URL `region` uses for `peer` instead of the peer's own (a proxy in front of it), and
    `peer_fields[(region, peer)]` more fields of that FERRY_PEERS entry (a bandwidth cap).
    """
    ports = {region: free_port() for region in ids}
    regions = Regions()
    for region in ids:
        peers = [
            {
                "id": other,
                "url": (peer_urls or {}).get((region, other), f"http://127.0.0.1:{ports[other]}"),
                "ak": ACCESS_KEY,
                "sk": SECRET_KEY,
            }
            | (peer_fields or {}).get((region, other), {})
            for other in ids
            if other != region
        ]
        env = (
            {
                "FERRY_REGION": region,
                "FERRY_PEERS": json.dumps(peers),
                "FERRY_ADMIN_ACCESS_KEY": ACCESS_KEY,
                "FERRY_ADMIN_SECRET_KEY": SECRET_KEY,
                "FERRY_ADMIN_PROJECT_ID": PROJECT_ID,
            }
            | (extra_env or {})
            | (region_env or {}).get(region, {})
        )
        regions.servers[region] = FerryServer(root / region, ports[region], env=env)
    try:
        for server in regions.servers.values():
            server.start()
    except Exception:
        regions.stop()
        raise
    return regions


__all__ = ["ACCESS_KEY", "ADMIN_PASSWORD", "PROJECT_ID", "SECRET_KEY", "Regions", "make_regions"]
