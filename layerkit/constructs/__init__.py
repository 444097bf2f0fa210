"""The CDK constructs users write: ``SharedPythonLayer``, ``PythonFunction``, layers owned elsewhere, and the
alpha's API (``PythonLayerVersion``, ``PythonFunction``, ``BundlingOptions``) as an adapter over them; the code
asset each gets from its builder, and ``auto``'s one builder per app.
"""
