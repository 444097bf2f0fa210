"""Reading a synthesized cloud assembly (``cdk.out``) as untrusted input: its stacks, layers and functions as they
will deploy, the content of its assets, the app synthesized into one, and a template ``sam local invoke`` runs.

``Assembly.load("cdk.out").function("my-stack/Function")``.
"""

from layerkit.assembly.cloud_assembly import Assembly, Function, Layer, LayerUse, Stack, UnsupportedFunctionError

__all__ = ["Assembly", "Function", "Layer", "LayerUse", "Stack", "UnsupportedFunctionError"]
