// Package traffic is the one interface through which a Rollout shifts
// traffic between its stable and canary Services. Each router (Gateway
// API, and later Istio, NGINX, SMI) implements Router in its own package;
// the Rollout controller never knows which one it talks to.
package traffic

import (
	"context"
	"slices"
)

// Services are the two Services a router sends traffic to.
type Services struct {
	Namespace      string
	Stable, Canary string
}

// State is what a Rollout wants its routers to carry: a canary weight and
// the managed header and mirror routes. Applying a State is idempotent;
// managed routes not in it are removed.
type State struct {
	// Weight is the canary's percentage (0-100) of the traffic.
	Weight int32
	// HeaderRoutes send matching requests to the canary (A/B).
	HeaderRoutes []HeaderRoute
	// MirrorRoutes copy matching requests to the canary.
	MirrorRoutes []MirrorRoute
}

// HeaderRoute sends requests matching every entry of Match to the canary.
type HeaderRoute struct {
	Name  string
	Match []HeaderMatch
}

// MirrorRoute copies Percent percent of the requests matching every entry
// of Match (all requests when empty) to the canary.
type MirrorRoute struct {
	Name    string
	Percent int32
	Match   []HeaderMatch
}

// HeaderMatch matches one request header: its value equals Exact, or
// matches the RE2 expression Regex (exactly one is set). Cookies and
// prefixes are expressed as regexes on the header by the caller.
type HeaderMatch struct {
	Name         string
	Exact, Regex string
}

// Router shifts traffic for one Rollout.
type Router interface {
	// Name identifies the router in status and logs.
	Name() string
	// Apply makes the router's objects carry state, changing only the
	// parts the Rollout manages.
	Apply(ctx context.Context, state State) error
	// Observe reports what the router's objects carry now.
	Observe(ctx context.Context) (Observed, error)
}

// Observed is what a router's objects carry.
type Observed struct {
	// Weight is the canary's percentage of the traffic.
	Weight int32
	// Routes names the managed routes present, "header/<name>" and
	// "mirror/<name>", sorted.
	Routes []string
	// Verified: the data plane has accepted the objects as they are.
	Verified bool
}

// RouteNames are the names Observed.Routes uses for a state's routes,
// sorted.
func (s State) RouteNames() []string {
	var out []string
	for _, h := range s.HeaderRoutes {
		out = append(out, "header/"+h.Name)
	}
	for _, m := range s.MirrorRoutes {
		out = append(out, "mirror/"+m.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
