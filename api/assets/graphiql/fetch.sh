#!/usr/bin/env bash
# Refreshes the GraphiQL console's files in this folder from the npm registry: each package's
# tarball is fetched with `npm pack`, checked against the sha512 integrity pinned below, and the
# browser builds (UMD, no bundler needed) and licence texts are copied out of it unchanged.
#
# To move to other versions: change VERSION and leave INTEGRITY empty, run this script (it
# prints the integrity it saw), paste that in, run it again, and update README.md's table.
set -euo pipefail
cd "$(dirname "$0")"

# name version integrity (npm's dist.integrity of the tarball)
PACKAGES=(
  "graphiql 3.9.0 sha512-rJYFlHdBbug9+YbFSwRVvgfPjCayC7wHecZkx/qB4XLuQPFQZw/yB9pmHFtOJV6RiNBBHro3u1GdocKa3YcGRA=="
  "react 18.3.1 sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ=="
  "react-dom 18.3.1 sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw=="
)
# package:path-in-tarball → file here
FILES=(
  "graphiql:graphiql.min.js graphiql.min.js"
  "graphiql:graphiql.min.css graphiql.min.css"
  "graphiql:LICENSE LICENSE.graphiql"
  "react:umd/react.production.min.js react.production.min.js"
  "react:LICENSE LICENSE.react"
  "react-dom:umd/react-dom.production.min.js react-dom.production.min.js"
  "react-dom:LICENSE LICENSE.react-dom"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${PACKAGES[@]}"; do
  read -r name version integrity <<<"$entry"
  tarball=$(cd "$work" && npm pack --silent "$name@$version")
  seen="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
  if [[ "$seen" != "$integrity" ]]; then
    echo "$name@$version: integrity $seen, expected ${integrity:-(none pinned)}" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar -xzf "$work/$tarball" -C "$work/$name"
  echo "$name@$version ok"
done
for entry in "${FILES[@]}"; do
  read -r source target <<<"$entry"
  cp "$work/${source%%:*}/package/${source#*:}" "$target"
done
sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js
