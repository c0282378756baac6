"""Helpers shared by the tests: fixtures the project builds itself."""
