// Package routers builds the traffic routers a Rollout's
// spec.strategy.canary.trafficRouting names. It is the one place that
// knows every router package.
package routers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/traffic"
	"github.com/drover-dev/drover/internal/traffic/gatewayapi"
	"github.com/drover-dev/drover/internal/traffic/istio"
	"github.com/drover-dev/drover/internal/traffic/nginx"
	"github.com/drover-dev/drover/internal/traffic/smi"
)

// Factory builds routers that write with c and read with reader.
type Factory struct {
	Client client.Client
	Reader client.Reader
}

// For returns the routers of a Rollout (none without trafficRouting), in
// a fixed order: gatewayAPI, istio, nginx, smi.
func (f Factory) For(ro *rolloutsv1alpha1.Rollout, svcs traffic.Services) ([]traffic.Router, error) {
	c := ro.Spec.Strategy.Canary
	if c == nil || c.TrafficRouting == nil {
		return nil, nil
	}
	tr := c.TrafficRouting
	// Objects a router creates (the canary Ingress, the TrafficSplit) are
	// the Rollout's: garbage-collected with it.
	owner := *metav1.NewControllerRef(ro, rolloutsv1alpha1.GroupVersion.WithKind("Rollout"))
	var out []traffic.Router
	if g := tr.GatewayAPI; g != nil {
		out = append(out, gatewayapi.New(f.Client, f.Reader, svcs, names(g.HTTPRoutes), names(g.GRPCRoutes)))
	}
	if i := tr.Istio; i != nil {
		var dr *istio.DestinationRule
		if d := i.DestinationRule; d != nil {
			dr = &istio.DestinationRule{Name: d.Name, StableSubset: d.StableSubsetName, CanarySubset: d.CanarySubsetName}
		}
		out = append(out, istio.New(f.Client, f.Reader, svcs, i.VirtualService.Name, i.VirtualService.Routes, dr))
	}
	if n := tr.NGINX; n != nil {
		out = append(out, nginx.New(f.Client, f.Reader, svcs, n.StableIngress, ro.Name, owner, n.AdditionalIngressAnnotations))
	}
	if s := tr.SMI; s != nil {
		name := s.TrafficSplitName
		if name == "" {
			name = ro.Name
		}
		out = append(out, smi.New(f.Client, f.Reader, svcs, name, s.RootService, ro.Name, owner))
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
