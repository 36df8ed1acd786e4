// Package traffic is the one interface through which a Rollout shifts
// traffic between its stable and canary Services. Each router (Gateway
// API, and later Istio, NGINX, SMI) implements Router in its own package;
// the Rollout controller never knows which one it talks to.
package traffic

import "context"

// Services are the two Services a router sends traffic to.
type Services struct {
	Namespace      string
	Stable, Canary string
}

// Router shifts traffic for one Rollout.
type Router interface {
	// Name identifies the router in status and logs.
	Name() string
	// SetWeight sends weight percent (0-100) of the traffic to the canary
	// Service and the rest to the stable one. It changes only the parts of
	// the router's objects the Rollout manages.
	SetWeight(ctx context.Context, weight int32) error
	// Weight reports the canary weight the router's objects carry now and
	// whether the data plane has accepted them (verified).
	Weight(ctx context.Context) (weight int32, verified bool, err error)
}
