"""Assembling a zip: the Docker-free build of a layer or function folder for one target (:mod:`.local_build`), and a
layer for several runtimes and architectures in as few versions as correctness allows (:mod:`.matrix`).
"""
