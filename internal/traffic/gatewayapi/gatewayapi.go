// Package gatewayapi shifts a Rollout's traffic with Gateway API routes
// (HTTPRoute and GRPCRoute, gateway.networking.k8s.io/v1): in every rule
// that sends traffic to the stable or the canary Service, the two
// backendRefs get the weights 100-w and w. Rules that reference neither
// Service, and every other field of the route, are left as their owner
// wrote them. A weight is verified when every Gateway the route is
// attached to has accepted the route's current generation.
package gatewayapi

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/drover-dev/drover/internal/traffic"
)

// Router is the Gateway API router of one Rollout.
type Router struct {
	client client.Client
	reader client.Reader
	svcs   traffic.Services
	http   []string
	grpc   []string
}

// New returns a router over the named HTTPRoutes and GRPCRoutes of
// svcs.Namespace. Routes are read with reader (uncached: the manager
// caches no routes) and written with c.
func New(c client.Client, reader client.Reader, svcs traffic.Services, httpRoutes, grpcRoutes []string) *Router {
	return &Router{client: c, reader: reader, svcs: svcs, http: httpRoutes, grpc: grpcRoutes}
}

// Name implements traffic.Router.
func (r *Router) Name() string { return "gatewayAPI" }

// route is an HTTPRoute or a GRPCRoute.
type route struct {
	obj     client.Object
	kind    string
	parents []gatewayv1.RouteParentStatus
}

// rules is the number of rules of the route.
func (rt route) rules() int {
	switch o := rt.obj.(type) {
	case *gatewayv1.HTTPRoute:
		return len(o.Spec.Rules)
	case *gatewayv1.GRPCRoute:
		return len(o.Spec.Rules)
	}
	return 0
}

// refs points at the backendRefs of rule i (valid until the rule's list
// grows).
func (rt route) refs(i int) []*gatewayv1.BackendRef {
	var out []*gatewayv1.BackendRef
	switch o := rt.obj.(type) {
	case *gatewayv1.HTTPRoute:
		for j := range o.Spec.Rules[i].BackendRefs {
			out = append(out, &o.Spec.Rules[i].BackendRefs[j].BackendRef)
		}
	case *gatewayv1.GRPCRoute:
		for j := range o.Spec.Rules[i].BackendRefs {
			out = append(out, &o.Spec.Rules[i].BackendRefs[j].BackendRef)
		}
	}
	return out
}

// add appends to rule i a backendRef like like, named name.
func (rt route) add(i int, like *gatewayv1.BackendRef, name string) {
	ref := *like.DeepCopy()
	ref.Name = gatewayv1.ObjectName(name)
	ref.Weight = ptr.To[int32](0)
	switch o := rt.obj.(type) {
	case *gatewayv1.HTTPRoute:
		o.Spec.Rules[i].BackendRefs = append(o.Spec.Rules[i].BackendRefs, gatewayv1.HTTPBackendRef{BackendRef: ref})
	case *gatewayv1.GRPCRoute:
		o.Spec.Rules[i].BackendRefs = append(o.Spec.Rules[i].BackendRefs, gatewayv1.GRPCBackendRef{BackendRef: ref})
	}
}

func (r *Router) routes(ctx context.Context) ([]route, error) {
	var out []route
	for _, name := range r.http {
		var hr gatewayv1.HTTPRoute
		if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: name}, &hr); err != nil {
			return nil, fmt.Errorf("reading HTTPRoute %s: %w", name, err)
		}
		out = append(out, route{obj: &hr, kind: "HTTPRoute", parents: hr.Status.Parents})
	}
	for _, name := range r.grpc {
		var gr gatewayv1.GRPCRoute
		if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: name}, &gr); err != nil {
			return nil, fmt.Errorf("reading GRPCRoute %s: %w", name, err)
		}
		out = append(out, route{obj: &gr, kind: "GRPCRoute", parents: gr.Status.Parents})
	}
	return out, nil
}

// SetWeight implements traffic.Router.
func (r *Router) SetWeight(ctx context.Context, weight int32) error {
	routes, err := r.routes(ctx)
	if err != nil {
		return err
	}
	for _, rt := range routes {
		before := rt.obj.DeepCopyObject().(client.Object)
		changed, managed := false, false
		for i := range rt.rules() {
			stable, canary := r.find(rt.refs(i))
			if stable == nil && canary == nil {
				continue
			}
			managed = true
			if canary == nil {
				rt.add(i, stable, r.svcs.Canary)
				changed = true
			}
			if stable == nil {
				rt.add(i, canary, r.svcs.Stable)
				changed = true
			}
			stable, canary = r.find(rt.refs(i))
			if ptr.Deref(stable.Weight, 1) != 100-weight || ptr.Deref(canary.Weight, 1) != weight {
				stable.Weight, canary.Weight = ptr.To(100-weight), ptr.To(weight)
				changed = true
			}
		}
		if !managed {
			return fmt.Errorf("%s %s: no rule sends traffic to service %s or %s", rt.kind, rt.obj.GetName(), r.svcs.Stable, r.svcs.Canary)
		}
		if !changed {
			continue
		}
		if err := r.client.Patch(ctx, rt.obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("setting weights on %s %s: %w", rt.kind, rt.obj.GetName(), err)
		}
	}
	return nil
}

// Weight implements traffic.Router: the canary's share in the first
// managed rule of the first route, verified when every route carries the
// same share in every managed rule and every parent accepted it.
func (r *Router) Weight(ctx context.Context) (int32, bool, error) {
	routes, err := r.routes(ctx)
	if err != nil {
		return 0, false, err
	}
	weight, seen, verified := int32(0), false, true
	for _, rt := range routes {
		for i := range rt.rules() {
			stable, canary := r.find(rt.refs(i))
			if stable == nil && canary == nil {
				continue
			}
			w := share(stable, canary)
			if !seen {
				weight, seen = w, true
			}
			verified = verified && w == weight
		}
		verified = verified && accepted(rt)
	}
	if !seen {
		return 0, false, errors.New("no route rule sends traffic to the stable or canary service")
	}
	return weight, verified, nil
}

// find returns the backendRefs of the stable and canary Services.
func (r *Router) find(refs []*gatewayv1.BackendRef) (stable, canary *gatewayv1.BackendRef) {
	for _, ref := range refs {
		if !isService(ref) || (ref.Namespace != nil && string(*ref.Namespace) != r.svcs.Namespace) {
			continue
		}
		switch string(ref.Name) {
		case r.svcs.Stable:
			stable = ref
		case r.svcs.Canary:
			canary = ref
		}
	}
	return stable, canary
}

func isService(ref *gatewayv1.BackendRef) bool {
	return (ref.Group == nil || *ref.Group == "") && (ref.Kind == nil || *ref.Kind == "Service")
}

// share is the canary's percentage of the two backends' weights.
func share(stable, canary *gatewayv1.BackendRef) int32 {
	var s, c int32
	if stable != nil {
		s = ptr.Deref(stable.Weight, 1)
	}
	if canary != nil {
		c = ptr.Deref(canary.Weight, 1)
	}
	if s+c == 0 {
		return 0
	}
	return c * 100 / (s + c)
}

// accepted reports whether every parent accepted the route's current
// generation with its references resolved.
func accepted(rt route) bool {
	if len(rt.parents) == 0 {
		return false
	}
	gen := rt.obj.GetGeneration()
	for _, p := range rt.parents {
		for _, t := range []string{string(gatewayv1.RouteConditionAccepted), string(gatewayv1.RouteConditionResolvedRefs)} {
			c := meta.FindStatusCondition(p.Conditions, t)
			if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != gen {
				return false
			}
		}
	}
	return true
}
