#!/usr/bin/env bash
# Builds Traefik (github.com/traefik/traefik/v3/cmd/traefik), the Gateway API
# implementation the traffic end-to-end tests run out of cluster, from the Go
# module proxy only.
#
# Traefik's own go.mod cannot be built as a dependency as is: it needs three
# local replacements, which this script generates in a throwaway module from
# modules the proxy does serve (nothing third-party is committed):
#
#   github.com/traefik/traefik/dynamic/ext  an unpublished nested module of
#       Traefik's repository (replaced there by ./pkg/config/dynamic/ext, which
#       a module zip leaves out); the open-source build only needs its two
#       empty structs HTTP and Router.
#   github.com/abbot/go-http-auth  Traefik replaces it with a fork the proxy
#       does not serve; upstream v0.4.0 plus the two helpers Traefik calls
#       (CheckSecret and (*DigestAuth).RequireAuthStale).
#   github.com/go-acme/lego/v5  v5.4.1 without providers/dns/* (it imports
#       cloud SDKs the proxy does not serve); NewDNSChallengeProviderByName
#       returns an error, so only the ACME DNS challenge is unavailable.
#
# Traefik's own gorilla/mux => containous/mux replacement and its tencentcloud
# exclude are kept (replace and exclude directives of a dependency do not
# apply, so the throwaway main module repeats them).
#
# The binary is cached like hack/build-tools.sh caches its tools (outside the
# work tree, keyed by the versions, this script and the Go version) and linked
# into ./bin/traefik. Cold build: about 4 minutes on 2 cores.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

TRAEFIK_VERSION=v3.7.13
LEGO_VERSION=v5.4.1
GO_HTTP_AUTH_VERSION=v0.4.0
# From Traefik's go.mod (replace block "Containous forks").
MUX_REPLACEMENT="github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59"
# From Traefik's go.mod (ambiguous import otherwise).
TENCENT_EXCLUDE="github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible"

cache_root=${DROVER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drover/tools}
gover=$(go env GOVERSION)
key=$(printf '%s %s %s %s\n' "$TRAEFIK_VERSION" "$LEGO_VERSION" "$GO_HTTP_AUTH_VERSION" "$gover" |
  cat - "$0" | sha256sum | cut -c1-12)
dir="$cache_root/traefik-$key"
mkdir -p bin

if [ -x "$dir/traefik" ]; then
  ln -sfn "$dir/traefik" bin/traefik
  exit 0
fi

echo "building traefik $TRAEFIK_VERSION into $dir (first time only)" >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/drover-traefik-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# moddir MODULE VERSION: downloads a module and prints its module cache dir.
moddir() {
  local d
  d=$(go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  if [ -z "$d" ] || [ ! -d "$d" ]; then
    echo "go mod download $1@$2 failed" >&2
    go mod download -json "$1@$2" >&2 || true
    return 1
  fi
  printf '%s\n' "$d"
}

# copymod MODULE VERSION DEST: a writable copy of a module's source.
copymod() {
  local src
  src=$(moddir "$1" "$2")
  mkdir -p "$3"
  cp -R "$src/." "$3/"
  chmod -R u+w "$3"
}

traefik_dir=$(moddir github.com/traefik/traefik/v3 "$TRAEFIK_VERSION")
grep -qF "github.com/gorilla/mux => $MUX_REPLACEMENT" "$traefik_dir/go.mod" ||
  { echo "traefik's go.mod no longer replaces gorilla/mux with $MUX_REPLACEMENT" >&2; exit 1; }
grep -qF "exclude $TENCENT_EXCLUDE" "$traefik_dir/go.mod" ||
  { echo "traefik's go.mod no longer excludes $TENCENT_EXCLUDE" >&2; exit 1; }

# 1. github.com/traefik/traefik/dynamic/ext
mkdir -p "$work/ext"
cat >"$work/ext/go.mod" <<'EOF'
module github.com/traefik/traefik/dynamic/ext

go 1.24
EOF
cat >"$work/ext/ext.go" <<'EOF'
// Package ext stands in for Traefik's unpublished dynamic configuration
// extension module: the open-source build embeds these empty structs.
package ext

// HTTP extends dynamic.HTTPConfiguration.
type HTTP struct{}

// Router extends dynamic.Router.
type Router struct{}
EOF

# 2. github.com/abbot/go-http-auth: upstream has no go.mod; add one and the
# helpers Traefik's fork provides.
copymod github.com/abbot/go-http-auth "$GO_HTTP_AUTH_VERSION" "$work/go-http-auth"
rm -rf "$work/go-http-auth/examples"
xcrypto=$(awk '$1 == "golang.org/x/crypto" { print $2; exit }' "$traefik_dir/go.mod")
xnet=$(awk '$1 == "golang.org/x/net" { print $2; exit }' "$traefik_dir/go.mod")
cat >"$work/go-http-auth/go.mod" <<EOF
module github.com/abbot/go-http-auth

go 1.24

require (
	golang.org/x/crypto $xcrypto
	golang.org/x/net $xnet
)
EOF
cat >"$work/go-http-auth/drover_traefik.go" <<'EOF'
package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CheckSecret reports whether password matches secret, an htpasswd entry
// (MD5 crypt by default, {SHA} or bcrypt by prefix).
func CheckSecret(password, secret string) bool {
	compare := compareFuncs[0].compare
	for _, cmp := range compareFuncs[1:] {
		if strings.HasPrefix(secret, cmp.prefix) {
			compare = cmp.compare
			break
		}
	}
	return compare([]byte(secret), []byte(password)) == nil
}

// RequireAuthStale is RequireAuth with stale=true in the challenge: the
// client's credentials were right but its nonce is unknown or reused, so it
// may retry with the new nonce without asking the user again.
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	a.mutex.Lock()
	if len(a.clients) > a.ClientCacheSize+a.ClientCacheTolerance {
		a.Purge(a.ClientCacheTolerance * 2)
	}
	nonce := RandomKey()
	a.clients[nonce] = &digest_client{nc: 0, last_seen: time.Now().UnixNano()}
	a.mutex.Unlock()
	w.Header().Set(contentType, a.Headers.V().UnauthContentType)
	w.Header().Set(a.Headers.V().Authenticate,
		fmt.Sprintf(`Digest realm="%s", nonce="%s", opaque="%s", algorithm="MD5", qop="auth", stale=true`,
			a.Realm, nonce, a.Opaque))
	w.WriteHeader(a.Headers.V().UnauthCode)
	w.Write([]byte(a.Headers.V().UnauthResponse))
}
EOF

# 3. github.com/go-acme/lego/v5 without its DNS providers.
copymod github.com/go-acme/lego/v5 "$LEGO_VERSION" "$work/lego"
rm -rf "$work/lego/providers/dns" "$work/lego/cmd" "$work/lego/docs" "$work/lego/.github"
mkdir -p "$work/lego/providers/dns"
cat >"$work/lego/providers/dns/dns_providers.go" <<'EOF'
// Package dns would create the DNS-01 challenge providers; this build leaves
// them out (their cloud SDKs are not available from the Go module proxy).
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName always fails: no DNS provider is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS provider %q is not available in this traefik build (built without lego's DNS providers)", name)
}
EOF

# The throwaway main module.
mkdir -p "$work/build"
cp "$traefik_dir/go.sum" "$work/build/go.sum"
chmod u+w "$work/build/go.sum"
cat >"$work/build/go.mod" <<EOF
module drover.local/traefik-build

go 1.26.0

tool github.com/traefik/traefik/v3/cmd/traefik

require github.com/traefik/traefik/v3 $TRAEFIK_VERSION

replace (
	github.com/abbot/go-http-auth => ../go-http-auth
	github.com/go-acme/lego/v5 => ../lego
	github.com/gorilla/mux => $MUX_REPLACEMENT
	github.com/traefik/traefik/dynamic/ext => ../ext
)

exclude $TENCENT_EXCLUDE
EOF

(
  cd "$work/build"
  go mod tidy
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  CGO_ENABLED=0 go build -trimpath -o "$dir.tmp/traefik" -ldflags "-s -w \
    -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION \
    -X github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z" \
    github.com/traefik/traefik/v3/cmd/traefik
)
rm -rf "$dir" && mv "$dir.tmp" "$dir"
ln -sfn "$dir/traefik" bin/traefik
echo "traefik ready in $root/bin/traefik" >&2
