"""ICE server settings for the live camera: secrets, $FER_ICE_SERVERS, validation, the default of none."""

from __future__ import annotations

import json

import pytest

from fer_core.app.ice import (
    ICE_ENV,
    IceConfigError,
    configured_ice_servers,
    rtc_configuration,
)

STUN = {"urls": "stun:stun.example.org:3478"}
TURN = {"urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
        "username": "fer", "credential": "secret"}


def test_no_configuration_means_no_ice_server():
    assert configured_ice_servers({}, {}) == []
    assert configured_ice_servers(None, {ICE_ENV: "  "}) == []
    assert rtc_configuration([]) == {"iceServers": []}  # explicit: left out, libraries add Google's STUN


def test_servers_from_the_environment_as_json():
    servers = configured_ice_servers({}, {ICE_ENV: json.dumps([STUN, TURN])})
    assert servers == [{"urls": ["stun:stun.example.org:3478"]}, TURN]


def test_secrets_win_over_the_environment():
    servers = configured_ice_servers({"ice_servers": [TURN]}, {ICE_ENV: json.dumps([STUN])})
    assert servers == [TURN]


def test_secrets_without_ice_servers_fall_back_to_the_environment():
    assert configured_ice_servers({"other": 1}, {ICE_ENV: json.dumps([STUN])}) == [{"urls": [STUN["urls"]]}]


@pytest.mark.parametrize(("value", "message"), [
    ("not json", "not valid JSON"),
    ('{"urls": "stun:x"}', "expected a list"),
    ('["stun:x"]', "expected a table/object"),
    ('[{"url": "stun:x"}]', "unknown keys"),
    ('[{"urls": []}]', "non-empty list"),
    ('[{"urls": "http://x"}]', "is not a URL like stun:HOST"),
    ('[{"urls": "stun:x:3478?transport=udp"}]', "is not a URL like stun:HOST"),
    ('[{"urls": "turn:x?transport=sctp", "username": "u", "credential": "p"}]', "is not a URL like"),
    ('[{"urls": "turn:x:3478"}]', "needs a 'username' and a 'credential'"),
    ('[{"urls": "turn:x", "username": "u", "credential": 5}]', "'credential' must be a string"),
])
def test_malformed_settings_are_rejected_with_where_and_why(value, message):
    with pytest.raises(IceConfigError, match=message):
        configured_ice_servers({}, {ICE_ENV: value})


def test_errors_in_secrets_name_the_secret():
    with pytest.raises(IceConfigError, match=r"secrets \[webrtc\] ice_servers\[1\]"):
        configured_ice_servers({"ice_servers": [STUN, {"urls": "turn:x"}]}, {})
