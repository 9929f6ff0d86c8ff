#!/bin/sh
# ./scripts/switch-traffic.sh blue-to-green | green-to-blue: point nginx's upstream at a colour.
set -e
case "$1" in
  blue-to-green) port="$GREEN_PORT" ;;
  green-to-blue) port="$BLUE_PORT" ;;
  *) echo "usage: $0 blue-to-green|green-to-blue" >&2; exit 2 ;;
esac
echo "upstream shop { server 127.0.0.1:$port; }" > "$NGINX_DIR/upstream.conf"
nginx -s reload -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR"
sleep 0.3
echo "traffic: $1"
