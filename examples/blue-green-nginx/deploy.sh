#!/bin/sh
# ./deploy.sh ENV: put the release on an environment (staging, production-blue, production-green).
# Here a "release" is the version file each app instance serves; a real team ships its build.
set -e
case "$1" in
  staging) echo "${RELEASE:-v2}" > apps/staging/version ;;
  production-green) echo "${RELEASE:-v2}" > apps/green/version ;;
  production-blue) echo "${RELEASE:-v2}" > apps/blue/version ;;
  *) echo "unknown environment $1" >&2; exit 2 ;;
esac
echo "deployed ${RELEASE:-v2} to $1"
