// Package routers builds the traffic routers a Rollout's
// spec.strategy.canary.trafficRouting names. It is the one place that
// knows every router package.
package routers

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/traffic"
	"github.com/drover-dev/drover/internal/traffic/gatewayapi"
)

// Factory builds routers that write with c and read with reader.
type Factory struct {
	Client client.Client
	Reader client.Reader
}

// For returns the routers of a Rollout (none without trafficRouting).
func (f Factory) For(ro *rolloutsv1alpha1.Rollout, svcs traffic.Services) ([]traffic.Router, error) {
	c := ro.Spec.Strategy.Canary
	if c == nil || c.TrafficRouting == nil {
		return nil, nil
	}
	var out []traffic.Router
	if g := c.TrafficRouting.GatewayAPI; g != nil {
		out = append(out, gatewayapi.New(f.Client, f.Reader, svcs, names(g.HTTPRoutes), names(g.GRPCRoutes)))
	}
	return out, nil
}

func names(refs []rolloutsv1alpha1.RouteRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Name
	}
	return out
}
