#!/bin/sh
# As the AWS Lambda base images do: the handler is the one argument; with AWS_LAMBDA_RUNTIME_API set, the
# runtime talks to that Runtime API directly. The stand-in has no Runtime Interface Emulator for the other case.
if [ $# -ne 1 ]; then
    echo "entrypoint requires the handler name to be the first argument" >&2
    exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    echo "this stand-in image has no Runtime Interface Emulator: set AWS_LAMBDA_RUNTIME_API" >&2
    exit 1
fi
exec /var/runtime/bootstrap
