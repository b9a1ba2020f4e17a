"""Sophia's agent: turns a sentence into tool calls through an MCP client session.

It depends on sophia_shared only and never imports the host or a server: every call it makes
goes through an MCP session, so roles, confirmation and audit apply as to any other client.
"""
