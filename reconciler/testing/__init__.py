"""Helpers for tests: fakes, simulators and conformance suites, run against fake and
real drivers alike. Nothing here is used by the engine itself.
"""
