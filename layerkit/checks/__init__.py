"""The guardrails: Lambda's rules applied to what each layer and function ships, at synth (``layerkit.check(app)``,
on the construct tree) and on a synthesized assembly (``layerkit check``), and ``check-upgrade``'s comparison of two
assemblies.
"""
