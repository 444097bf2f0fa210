"""How a layer version reaches functions in other stacks (SSM parameter or export), and the versions a layer
construct publishes: one home for both the kit's own layer and the alpha's drop-in.
"""
