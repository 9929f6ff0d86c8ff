#!/bin/sh
# ./scripts/health-check.sh ENV: the environment's instance answers /health.
case "$1" in
  staging) port="$STAGING_PORT" ;;
  production-green) port="$GREEN_PORT" ;;
  production-blue) port="$BLUE_PORT" ;;
  *) echo "unknown environment $1" >&2; exit 2 ;;
esac
curl -fsS "http://127.0.0.1:$port/health"
