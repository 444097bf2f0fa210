"""The Docker builder: the folder staged for the CDK's own ``PythonLayerVersion`` / ``PythonFunction``, the bundling
on the Lambda build image with the kit's hooks, and what the Docker engine on this machine can build.
"""
