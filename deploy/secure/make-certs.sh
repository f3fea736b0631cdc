#!/bin/sh
# Make a cluster's certificates, laid out per host, with `shoal certs init|issue` underneath.
#
#   make-certs.sh OUT_DIR HEAD_NAME [NODE...]
#
#   OUT_DIR/ca/      the CA and everything it signed (ca.key: keep it off the compute nodes)
#   OUT_DIR/head/    what the head node serves with: ca.crt, head.crt/key, the shared
#                    client.crt/key, and admin.crt/key (a user "admin" with the Admin role)
#   OUT_DIR/NODE/    what agent NODE joins with: ca.crt, node.crt, node.key
#
# Copy each directory to that host's /etc/shoal/tls (deploy/secure/*.toml read it there);
# deploy/compose.yaml runs this in its `certs` service. HEAD_NAME is the name agents and users
# dial the head node by: its certificate must carry it. Running it again issues certificates
# only for new nodes and keeps the CA.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 OUT_DIR HEAD_NAME [NODE...]" >&2
    exit 2
fi
out=$1
head=$2
shift 2
ca=$out/ca
# Keys are written 0600 by shoal; the copies below must not be more open than that.
umask 077

if [ ! -f "$ca/ca.key" ]; then
    shoal certs init --dir "$ca" --name "$head"
    shoal certs issue --dir "$ca" --user admin --role Admin
fi
mkdir -p "$out/head"
for f in ca.crt head.crt head.key client.crt client.key; do
    cp "$ca/$f" "$out/head/$f"
done
cp "$ca/admin-admin.crt" "$out/head/admin.crt"
cp "$ca/admin-admin.key" "$out/head/admin.key"

for node in "$@"; do
    case $node in
        ca | head)
            echo "$0: a node may not be called '$node' (OUT_DIR/$node holds other files)" >&2
            exit 2
            ;;
    esac
    if [ ! -f "$ca/node-$node.crt" ]; then
        shoal certs issue --dir "$ca" --node "$node"
    fi
    mkdir -p "$out/$node"
    cp "$ca/ca.crt" "$out/$node/ca.crt"
    cp "$ca/node-$node.crt" "$out/$node/node.crt"
    cp "$ca/node-$node.key" "$out/$node/node.key"
done
