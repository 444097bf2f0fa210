"""What an installer leaves in a folder: ``RECORD`` rows read as hostile input, distributions and their metadata,
ELF files and their debug sections, and the opt-in slimming of installed packages.

The lowest step, and the standard library only: the Docker builder copies this package into its bundling
container and runs ``python -m layerkit.installed.slim`` there, so that both builders leave out the same files.
"""
