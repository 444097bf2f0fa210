"""The example app's CDK stacks."""
