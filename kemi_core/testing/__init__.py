"""Helpers for testing kemi and its plugins offline: a real server process on 127.0.0.1, a tiny
UDP SIP client, SIPp runs. Used by kemi's own suite; third-party plugins may use them too."""
