"""Lambda's rules, pure: its limits, whether a compiled file loads for a target, and what a layer's or function's
content must satisfy (each finding one sentence with the fix). Nothing here reads a file or runs a process: the
callers hand the names, sizes and heads in.
"""
