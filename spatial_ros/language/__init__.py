"""Spatial language: referring expressions parsed into constraints, grounded as a small
program over specialist candidates (parser, lexicon, colours, program)."""
