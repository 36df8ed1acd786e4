// Package gatewayapi shifts a Rollout's traffic with Gateway API routes
// (HTTPRoute and GRPCRoute, gateway.networking.k8s.io/v1): in every rule
// that sends traffic to the stable or the canary Service, the two
// backendRefs get the weights 100-w and w; header routes (A/B) and mirror
// routes are rules named "drover-..." added beside the owner's, on
// HTTPRoutes. Rules that reference neither Service, and every other field
// of the route, are left as their owner wrote them. A state is verified
// when every Gateway the route is attached to has accepted the route's
// current generation.
package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
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

// ruleName is the name of rule i ("" when unnamed).
func (rt route) ruleName(i int) string {
	var n *gatewayv1.SectionName
	switch o := rt.obj.(type) {
	case *gatewayv1.HTTPRoute:
		n = o.Spec.Rules[i].Name
	case *gatewayv1.GRPCRoute:
		n = o.Spec.Rules[i].Name
	}
	if n == nil {
		return ""
	}
	return string(*n)
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

// managedPrefix starts the names of the rules the Rollout adds (header
// and mirror routes); rules without it are the route owner's.
const managedPrefix = "drover-"

// Apply implements traffic.Router: in every rule of the owner's that
// sends traffic to the stable or the canary Service, the two get the
// weights 100-w and w; header and mirror routes are rules (or, for a mirror
// of every request, a RequestMirror filter) the Rollout adds beside them,
// HTTPRoutes only. Everything else in the route stays as its owner wrote it.
func (r *Router) Apply(ctx context.Context, state traffic.State) error {
	routes, err := r.routes(ctx)
	if err != nil {
		return err
	}
	for _, rt := range routes {
		before := rt.obj.DeepCopyObject().(client.Object)
		var err error
		switch o := rt.obj.(type) {
		case *gatewayv1.HTTPRoute:
			err = r.applyHTTP(o, state)
		case *gatewayv1.GRPCRoute:
			err = r.applyWeights(rt, state.Weight)
		}
		if err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(before, rt.obj) {
			continue
		}
		if err := r.client.Patch(ctx, rt.obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("updating %s %s: %w", rt.kind, rt.obj.GetName(), err)
		}
	}
	return nil
}

// applyWeights sets the weights in every owner's rule that references the
// stable or the canary Service, adding the missing one of the pair.
func (r *Router) applyWeights(rt route, weight int32) error {
	managed := false
	for i := range rt.rules() {
		if isManaged(rt.ruleName(i)) {
			continue
		}
		stable, canary := r.find(rt.refs(i))
		if stable == nil && canary == nil {
			continue
		}
		managed = true
		if canary == nil {
			rt.add(i, stable, r.svcs.Canary)
		}
		if stable == nil {
			rt.add(i, canary, r.svcs.Stable)
		}
		stable, canary = r.find(rt.refs(i))
		stable.Weight, canary.Weight = ptr.To(100-weight), ptr.To(weight)
	}
	if !managed {
		return fmt.Errorf("%s %s: no rule sends traffic to service %s or %s", rt.kind, rt.obj.GetName(), r.svcs.Stable, r.svcs.Canary)
	}
	return nil
}

// applyHTTP rebuilds an HTTPRoute's managed parts from state.
func (r *Router) applyHTTP(hr *gatewayv1.HTTPRoute, state traffic.State) error {
	// Drop what an earlier state added, then add the current one.
	owners := hr.Spec.Rules[:0:0]
	for _, rule := range hr.Spec.Rules {
		if rule.Name != nil && isManaged(string(*rule.Name)) {
			continue
		}
		owners = append(owners, rule)
	}
	hr.Spec.Rules = owners
	rt := route{obj: hr, kind: "HTTPRoute"}
	if err := r.applyWeights(rt, state.Weight); err != nil {
		return err
	}
	var mirrors, headers []gatewayv1.HTTPRouteRule
	for i := range owners {
		rule := &hr.Spec.Rules[i]
		stable, _ := r.find(rt.refs(i))
		if stable == nil {
			continue // a rule of the owner's for other backends
		}
		for _, h := range state.HeaderRoutes {
			headers = append(headers, gatewayv1.HTTPRouteRule{
				Name:        ptr.To(gatewayv1.SectionName(fmt.Sprintf("%sheader-%s-%d", managedPrefix, h.Name, i))),
				Matches:     withHeaders(rule.Matches, h.Match),
				Filters:     rule.Filters,
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: r.backend(stable, r.svcs.Canary, nil)}},
			})
		}
		for _, m := range state.MirrorRoutes {
			mirror := gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestMirror,
				RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{BackendRef: r.backend(stable, r.svcs.Canary, nil).BackendObjectReference, Percent: ptr.To(m.Percent)}}
			mirrors = append(mirrors, gatewayv1.HTTPRouteRule{
				Name:        ptr.To(gatewayv1.SectionName(fmt.Sprintf("%smirror-%s-%d", managedPrefix, m.Name, i))),
				Matches:     withHeaders(rule.Matches, m.Match),
				Filters:     append(append([]gatewayv1.HTTPRouteFilter(nil), rule.Filters...), mirror),
				BackendRefs: append([]gatewayv1.HTTPBackendRef(nil), rule.BackendRefs...),
			})
		}
	}
	// Mirror rules go first: with the owner's own matches they would
	// otherwise never win (the first of equal rules matches). Header rules
	// are more specific than the owner's and win wherever they are.
	hr.Spec.Rules = append(append(mirrors, hr.Spec.Rules...), headers...)
	return nil
}

// backend is a reference like like (port, kind, namespace) to the named
// Service.
func (r *Router) backend(like *gatewayv1.BackendRef, name string, weight *int32) gatewayv1.BackendRef {
	ref := *like.DeepCopy()
	ref.Name = gatewayv1.ObjectName(name)
	ref.Weight = weight
	return ref
}

// withHeaders is matches with every header condition added to each (one
// match of only the headers when there are none; none at all for none).
func withHeaders(matches []gatewayv1.HTTPRouteMatch, headers []traffic.HeaderMatch) []gatewayv1.HTTPRouteMatch {
	var hs []gatewayv1.HTTPHeaderMatch
	for _, h := range headers {
		m := gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(h.Name), Type: ptr.To(gatewayv1.HeaderMatchExact), Value: h.Exact}
		if h.Regex != "" {
			m.Type, m.Value = ptr.To(gatewayv1.HeaderMatchRegularExpression), h.Regex
		}
		hs = append(hs, m)
	}
	if len(matches) == 0 {
		if len(hs) == 0 {
			return nil
		}
		return []gatewayv1.HTTPRouteMatch{{Headers: hs}}
	}
	out := make([]gatewayv1.HTTPRouteMatch, len(matches))
	for i, m := range matches {
		m = *m.DeepCopy()
		m.Headers = append(m.Headers, hs...)
		out[i] = m
	}
	return out
}

func isManaged(ruleName string) bool { return strings.HasPrefix(ruleName, managedPrefix) }

// Observe implements traffic.Router: the canary's share in the first
// rule of the owner's that names the Services, the managed routes present,
// verified when every such rule carries the same share and every parent
// accepted the route's generation.
func (r *Router) Observe(ctx context.Context) (traffic.Observed, error) {
	var out traffic.Observed
	routes, err := r.routes(ctx)
	if err != nil {
		return out, err
	}
	seen, verified := false, true
	names := map[string]bool{}
	for _, rt := range routes {
		for i := range rt.rules() {
			if name := rt.ruleName(i); isManaged(name) {
				names[routeName(name)] = true
				continue
			}
			stable, canary := r.find(rt.refs(i))
			if stable == nil && canary == nil {
				continue
			}
			w := share(stable, canary)
			if !seen {
				out.Weight, seen = w, true
			}
			verified = verified && w == out.Weight
		}
		verified = verified && accepted(rt)
	}
	if !seen {
		return out, errors.New("no route rule sends traffic to the stable or canary service")
	}
	for n := range names {
		out.Routes = append(out.Routes, n)
	}
	slices.Sort(out.Routes)
	out.Verified = verified
	return out, nil
}

// routeName turns a managed rule's name, "drover-header-<name>-<i>", into
// "header/<name>".
func routeName(rule string) string {
	rest := strings.TrimPrefix(rule, managedPrefix)
	if i := strings.LastIndex(rest, "-"); i > 0 {
		rest = rest[:i]
	}
	kind, name, _ := strings.Cut(rest, "-")
	return kind + "/" + name
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
