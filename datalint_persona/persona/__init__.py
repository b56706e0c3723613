"""Persona vectors, where they are found, and the trait files they are built from."""
