#!/usr/bin/env bash
# Start the consumer for this example with two workers.
# Pass other options after it, e.g. ./run-consumer.sh -k thread -v
cd "$(dirname "$0")/../.." && exec npx huey-consumer examples/simple/main.huey --workers 2 "$@"
