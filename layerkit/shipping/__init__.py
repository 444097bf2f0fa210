"""What of a user's folder may ship: the never-deploy list, excludes, links (followed, loop-safe, reported when they
leave the folder), special files refused, and secrets (a private key, an AWS secret access key) that stop the build.
"""
