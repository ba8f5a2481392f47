"""Prepared data: images decoded once into uint8 arrays with fixed splits."""
