"""Synthesis: find faces and landmarks, place a mask template on each face, write the pairs."""
