"""Helpers shared by the tests: builders of inputs, backends, the API in process and as a server, load, histories."""
