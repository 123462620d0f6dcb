"""Helpers shared by the tests: backends, the API in process and as a server, load, builders of histories."""
