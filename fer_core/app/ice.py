"""ICE servers (STUN/TURN) for the live camera's WebRTC connection, from secrets or the environment.

On localhost the browser and the server reach each other directly, so the default is no ICE server
at all: nothing outside the machine is contacted (streamlit-webrtc would otherwise fall back to
Google's public STUN server). A deployment behind NAT names its servers either in Streamlit's
secrets (``.streamlit/secrets.toml``)::

    [[webrtc.ice_servers]]
    urls = "stun:stun.example.org:3478"

    [[webrtc.ice_servers]]
    urls = ["turn:turn.example.org:3478?transport=udp"]
    username = "fer"
    credential = "secret"

or as JSON in ``$FER_ICE_SERVERS`` (the same list); the secrets win when both are set. The server
side (aiortc) uses the first STUN URL and the first TURN URL only; the browser tries them all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

ICE_ENV = "FER_ICE_SERVERS"
# The URL forms both ends accept (RFC 7064/7065; aiortc on the server rejects anything else).
STUN_URL = re.compile(r"stuns?:[^?:/\s]+(:\d+)?")
TURN_URL = re.compile(r"turns?:[^?:/\s]+(:\d+)?(\?transport=(udp|tcp))?")
SERVER_KEYS = {"urls", "username", "credential"}


class IceConfigError(ValueError):
    """The configured ICE servers are malformed; the message says where."""


def _urls(server: Mapping[str, Any], where: str) -> list[str]:
    urls = server.get("urls")
    urls = [urls] if isinstance(urls, str) else urls
    if not isinstance(urls, Sequence) or not urls or not all(isinstance(u, str) for u in urls):
        raise IceConfigError(f"{where}: 'urls' must be a URL or a non-empty list of URLs")
    for url in urls:
        if not (STUN_URL.fullmatch(url) or TURN_URL.fullmatch(url)):
            raise IceConfigError(f"{where}: {url!r} is not a URL like stun:HOST[:PORT] or "
                                 "turn:HOST[:PORT][?transport=udp|tcp] (also stuns:, turns:)")
    return list(urls)


def parse_ice_server(server: Any, where: str) -> dict[str, Any]:
    """One server as the ``RTCIceServer`` dict WebRTC takes: ``{"urls": [...], "username", "credential"}``.

    TURN servers need both a username and a credential; a STUN server needs neither.
    """
    if not isinstance(server, Mapping):
        raise IceConfigError(f"{where}: expected a table/object with 'urls', got {type(server).__name__}")
    unknown = set(server) - SERVER_KEYS
    if unknown:
        raise IceConfigError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(SERVER_KEYS)})")
    parsed: dict[str, Any] = {"urls": _urls(server, where)}
    for key in ("username", "credential"):
        if key in server:
            if not isinstance(server[key], str):
                raise IceConfigError(f"{where}: '{key}' must be a string")
            parsed[key] = server[key]
    if any(u.startswith(("turn:", "turns:")) for u in parsed["urls"]) and not {"username", "credential"} <= set(parsed):
        raise IceConfigError(f"{where}: a TURN server needs a 'username' and a 'credential'")
    return parsed


def parse_ice_servers(servers: Any, source: str) -> list[dict[str, Any]]:
    """A list of ICE servers (already decoded from TOML or JSON), validated; ``source`` names it in errors."""
    if isinstance(servers, (str, bytes)) or not isinstance(servers, Sequence):
        raise IceConfigError(f"{source}: expected a list of ICE servers, got {type(servers).__name__}")
    return [parse_ice_server(server, f"{source}[{i}]") for i, server in enumerate(servers)]


def ice_servers_from_env(environ: Mapping[str, str] | None = None) -> list[dict[str, Any]] | None:
    """The servers in ``$FER_ICE_SERVERS`` (JSON), or ``None`` when it is unset or empty."""
    text = (os.environ if environ is None else environ).get(ICE_ENV, "").strip()
    if not text:
        return None
    try:
        servers = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IceConfigError(f"{ICE_ENV} is not valid JSON: {exc}") from None
    return parse_ice_servers(servers, ICE_ENV)


def configured_ice_servers(webrtc_secrets: Mapping[str, Any] | None = None,
                           environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The ICE servers to use: ``[webrtc] ice_servers`` from the secrets, else ``$FER_ICE_SERVERS``, else none."""
    if webrtc_secrets and "ice_servers" in webrtc_secrets:
        return parse_ice_servers(webrtc_secrets["ice_servers"], "secrets [webrtc] ice_servers")
    return ice_servers_from_env(environ) or []


def rtc_configuration(ice_servers: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``RTCConfiguration`` for streamlit-webrtc (browser and server side).

    ``iceServers`` is always set, even empty: left out, streamlit-webrtc and aiortc fill in Google's
    public STUN server.
    """
    return {"iceServers": ice_servers}
