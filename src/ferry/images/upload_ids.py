"""Upload session ids that carry their own proof, so an upload costs no database row.

An id is `<nonce>-<repository id>-<mac>`: 128 random bits, the repository the session was
opened in, and an HMAC (a key derived from the region's secret) over both and the repository's
name. A PATCH, a status request or a cancel checks the MAC and nothing else; the upload's bytes
in the store are the session. The PUT that finishes it compares the repository id with the one
the name resolves to now, so a session does not outlive its repository.
A forged id, one from another region's key, or one used under another repository's name fails
the check, and the caller sees BLOB_UPLOAD_UNKNOWN as for any unknown session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from ferry.names import ImageName

_FORM = re.compile(r"([0-9a-f]{32})-([0-9]{1,18})-([0-9a-f]{32})")


@dataclass(frozen=True)
class UploadTicket:
    upload_id: str  # also the name of the session's bytes in the store
    repository_id: int


class UploadIds:
    def __init__(self, secret_key: str) -> None:
        # A key of its own: an upload id's MAC is never also a valid signature elsewhere.
        self._key = hashlib.sha256(b"ferry upload ids\0" + secret_key.encode()).digest()

    def issue(self, image: ImageName, repository_id: int) -> UploadTicket:
        nonce = secrets.token_hex(16)
        upload_id = f"{nonce}-{repository_id}-{self._mac(nonce, repository_id, image)}"
        return UploadTicket(upload_id, repository_id)

    def check(self, image: ImageName, upload_id: str) -> UploadTicket | None:
        """The ticket when this region issued the id for this repository name, else None."""
        form = _FORM.fullmatch(upload_id)
        if form is None:
            return None
        nonce, repository_id, mac = form[1], int(form[2]), form[3]
        if not hmac.compare_digest(mac, self._mac(nonce, repository_id, image)):
            return None
        return UploadTicket(upload_id, repository_id)

    def _mac(self, nonce: str, repository_id: int, image: ImageName) -> str:
        message = f"{nonce}\0{repository_id}\0{image}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]
