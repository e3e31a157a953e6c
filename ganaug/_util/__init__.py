"""Private utilities at the bottom of the layers: argument and image checks, random streams, atomic files.

Nothing here knows about GANs; every other layer may use it, and it imports no other part of ganaug.
"""
