"""Whether a weights file can be downloaded now: checked before a library's own slow retries
(open_clip's hub download retries for ~46 s without network), so a stage fails in seconds."""
from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

NETWORK_PROBE_S = 2.0


def answers(host: str, port: int, timeout: float = NETWORK_PROBE_S) -> bool:
    """Whether a TCP connection to host:port opens within `timeout`; the probe runs in a thread so
    a hanging DNS lookup cannot stall us."""
    opened = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            opened.set()
        except OSError:
            pass

    threading.Thread(target=probe, daemon=True).start()
    return opened.wait(timeout)


def _reachable(url: str) -> bool:
    """Whether the URL's host (or the configured HTTPS proxy) answers within NETWORK_PROBE_S."""
    target = urlparse(os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or url)
    return answers(target.hostname, target.port or (443 if target.scheme == "https" else 80))


def why_no_download(url: str) -> str | None:
    """Why `url` cannot be downloaded now (HF_HUB_OFFLINE set, read as huggingface_hub reads it,
    or its host not answering), or None: checked before a library's own slow retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return "HF_HUB_OFFLINE is set"
    return None if _reachable(url) else f"{urlparse(url).hostname} cannot be reached"
