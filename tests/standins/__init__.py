"""Stand-ins: small local HTTP servers that implement the documented contract of a cloud API.

The code under test talks to them with its real HTTP client, over real loopback sockets.
"""
