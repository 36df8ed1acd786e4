// Package istio shifts a Rollout's traffic with an Istio VirtualService
// (networking.istio.io/v1), read and written as unstructured objects so
// that Drover needs no Istio Go dependency.
//
// In every managed http route (the ones named, or every route with a
// destination on the stable or the canary Service), the two destinations
// get the weights 100-w and w; the missing one is added like the present
// one. With a DestinationRule the destinations are told apart by their
// subsets instead of their hosts, and the Rollout keeps the two subsets'
// labels equal to the stable and canary Services' selectors (the pod labels
// plus the revision label), so the subsets follow the revisions without the
// Router interface knowing them.
//
// Header and mirror routes are http routes named "drover-header-<name>-<i>"
// and "drover-mirror-<name>-<i>", inserted right before the managed route
// <i> they derive from (Istio evaluates http routes in order): its matches
// plus the headers, its other fields, and the canary destination (header)
// or its weighted destinations and a mirror to the canary (mirror). Every
// other route, and every other field, is left as its owner wrote it.
package istio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/traffic"
)

// The Istio kinds the router reads and writes.
var (
	VirtualServiceGVK  = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
	DestinationRuleGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
)

// DestinationRule names a DestinationRule and its stable and canary
// subsets.
type DestinationRule struct {
	Name                       string
	StableSubset, CanarySubset string
}

// Router is the Istio router of one Rollout.
type Router struct {
	client client.Client
	reader client.Reader
	svcs   traffic.Services
	vs     string
	routes []string
	dr     *DestinationRule
}

// New returns a router over the VirtualService virtualService of
// svcs.Namespace: its http routes named in routes (every route that sends
// to the stable or canary Service when empty), with the subsets of dr when
// not nil. Objects are read with reader (uncached) and written with c.
func New(c client.Client, reader client.Reader, svcs traffic.Services, virtualService string, routes []string, dr *DestinationRule) *Router {
	return &Router{client: c, reader: reader, svcs: svcs, vs: virtualService, routes: routes, dr: dr}
}

// Name implements traffic.Router.
func (r *Router) Name() string { return "istio" }

// managedPrefix starts the names of the http routes the Rollout adds;
// routes without it are the owner's.
const managedPrefix = "drover-"

func (r *Router) get(ctx context.Context, gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: name}, u); err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", gvk.Kind, name, err)
	}
	return u, nil
}

// patch writes obj if it differs from before, under before's
// resourceVersion.
func (r *Router) patch(ctx context.Context, before, obj *unstructured.Unstructured) error {
	if sameJSON(before.Object, obj.Object) {
		return nil
	}
	if err := r.client.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("updating %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return nil
}

// Apply implements traffic.Router: the DestinationRule's subsets first
// (so that a weight never sends to a subset that selects the wrong pods),
// then the VirtualService's managed routes.
func (r *Router) Apply(ctx context.Context, state traffic.State) error {
	if r.dr != nil {
		dr, err := r.get(ctx, DestinationRuleGVK, r.dr.Name)
		if err != nil {
			return err
		}
		before := dr.DeepCopy()
		if err := r.applySubsets(ctx, dr); err != nil {
			return err
		}
		if err := r.patch(ctx, before, dr); err != nil {
			return err
		}
	}
	vs, err := r.get(ctx, VirtualServiceGVK, r.vs)
	if err != nil {
		return err
	}
	before := vs.DeepCopy()
	if err := r.applyVirtualService(vs, state); err != nil {
		return err
	}
	return r.patch(ctx, before, vs)
}

// applyVirtualService rebuilds the managed parts of vs's http routes.
func (r *Router) applyVirtualService(vs *unstructured.Unstructured, state traffic.State) error {
	httpRoutes, err := r.httpRoutes(vs)
	if err != nil {
		return err
	}
	var out []any
	managed := false
	owner := 0
	for _, hr := range httpRoutes {
		if isManaged(hr) {
			continue // rebuilt below from the current state
		}
		i := owner
		owner++
		ok, err := r.selected(hr)
		if err != nil {
			return err
		}
		if !ok {
			out = append(out, hr)
			continue
		}
		managed = true
		canary, err := r.setWeights(hr, state.Weight)
		if err != nil {
			return err
		}
		for _, h := range state.HeaderRoutes {
			out = append(out, headerRoute(hr, canary, h, i))
		}
		for _, m := range state.MirrorRoutes {
			out = append(out, mirrorRoute(hr, canary, m, i))
		}
		out = append(out, hr)
	}
	if err := r.allNamed(httpRoutes); err != nil {
		return err
	}
	if !managed {
		return r.noRoute()
	}
	return unstructured.SetNestedSlice(vs.Object, out, "spec", "http")
}

func (r *Router) noRoute() error {
	if r.dr != nil {
		return fmt.Errorf("VirtualService %s: no http route sends traffic to subset %s or %s", r.vs, r.dr.StableSubset, r.dr.CanarySubset)
	}
	return fmt.Errorf("VirtualService %s: no http route sends traffic to service %s or %s", r.vs, r.svcs.Stable, r.svcs.Canary)
}

// httpRoutes are the http routes of vs, each a map.
func (r *Router) httpRoutes(vs *unstructured.Unstructured) ([]map[string]any, error) {
	raw, _, err := unstructured.NestedSlice(vs.Object, "spec", "http")
	if err != nil {
		return nil, fmt.Errorf("VirtualService %s: spec.http: %w", r.vs, err)
	}
	out := make([]map[string]any, 0, len(raw))
	for i, x := range raw {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("VirtualService %s: spec.http[%d] is not an object", r.vs, i)
		}
		out = append(out, m)
	}
	return out, nil
}

// allNamed checks that every route the spec names exists.
func (r *Router) allNamed(httpRoutes []map[string]any) error {
	for _, name := range r.routes {
		if !slices.ContainsFunc(httpRoutes, func(hr map[string]any) bool { return routeName(hr) == name && !isManaged(hr) }) {
			return fmt.Errorf("VirtualService %s has no http route named %s", r.vs, name)
		}
	}
	return nil
}

// selected reports whether the Rollout manages an owner's route.
func (r *Router) selected(hr map[string]any) (bool, error) {
	stable, canary, _ := r.find(hr)
	refers := stable != nil || canary != nil
	if len(r.routes) == 0 {
		return refers, nil
	}
	if !slices.Contains(r.routes, routeName(hr)) {
		return false, nil
	}
	if !refers {
		if r.dr != nil {
			return false, fmt.Errorf("VirtualService %s: http route %s sends to neither subset %s nor %s", r.vs, routeName(hr), r.dr.StableSubset, r.dr.CanarySubset)
		}
		return false, fmt.Errorf("VirtualService %s: http route %s sends to neither service %s nor %s", r.vs, routeName(hr), r.svcs.Stable, r.svcs.Canary)
	}
	return true, nil
}

// find returns the route's stable and canary destinations (entries of its
// "route" list) and how many other destinations it has.
func (r *Router) find(hr map[string]any) (stable, canary map[string]any, others int) {
	for _, x := range destinations(hr) {
		d, _ := x["destination"].(map[string]any)
		host, _ := d["host"].(string)
		subset, _ := d["subset"].(string)
		switch {
		case r.dr != nil && subset == r.dr.StableSubset:
			stable = x
		case r.dr != nil && subset == r.dr.CanarySubset:
			canary = x
		case r.dr == nil && subset == "" && r.hostIs(host, r.svcs.Stable):
			stable = x
		case r.dr == nil && subset == "" && r.hostIs(host, r.svcs.Canary):
			canary = x
		default:
			others++
		}
	}
	return stable, canary, others
}

// destinations are the entries of the route's "route" list.
func destinations(hr map[string]any) []map[string]any {
	raw, _ := hr["route"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// hostIs reports whether host names the Service svc of the Rollout's
// namespace: svc, svc.ns, svc.ns.svc or svc.ns.svc.<cluster domain>.
func (r *Router) hostIs(host, svc string) bool {
	full := svc + "." + r.svcs.Namespace
	return host == svc || host == full || host == full+".svc" || strings.HasPrefix(host, full+".svc.")
}

// setWeights gives the route's stable and canary destinations the weights
// 100-w and w, adding the missing one, and returns the canary's.
func (r *Router) setWeights(hr map[string]any, weight int32) (map[string]any, error) {
	stable, canary, others := r.find(hr)
	if others > 0 {
		return nil, fmt.Errorf("VirtualService %s: http route %s has destinations besides the stable and canary ones: the istio router needs routes that send only to them", r.vs, routeName(hr))
	}
	switch {
	case canary == nil:
		canary = r.sibling(stable, r.svcs.Stable, r.svcs.Canary, r.canarySubset())
		hr["route"] = append(hr["route"].([]any), canary)
	case stable == nil:
		stable = r.sibling(canary, r.svcs.Canary, r.svcs.Stable, r.stableSubset())
		hr["route"] = append([]any{stable}, hr["route"].([]any)...)
	}
	stable["weight"], canary["weight"] = int64(100-weight), int64(weight)
	return canary, nil
}

func (r *Router) stableSubset() string {
	if r.dr == nil {
		return ""
	}
	return r.dr.StableSubset
}

func (r *Router) canarySubset() string {
	if r.dr == nil {
		return ""
	}
	return r.dr.CanarySubset
}

// sibling is a destination like like (port, headers) for the other
// Service: the host renamed (written the same way) or, with a
// DestinationRule, the same host and the other subset.
func (r *Router) sibling(like map[string]any, from, to, subset string) map[string]any {
	out := runtime.DeepCopyJSON(like)
	d, _ := out["destination"].(map[string]any)
	if d == nil {
		d = map[string]any{}
		out["destination"] = d
	}
	if subset != "" {
		d["subset"] = subset
	} else if host, _ := d["host"].(string); strings.HasPrefix(host, from) {
		d["host"] = to + strings.TrimPrefix(host, from)
	} else {
		d["host"] = to
	}
	return out
}

// headerRoute is the managed route that sends the requests of the owner's
// route hr that also match h to the canary.
func headerRoute(hr, canary map[string]any, h traffic.HeaderRoute, i int) map[string]any {
	out := derived(hr, fmt.Sprintf("%sheader-%s-%d", managedPrefix, h.Name, i), h.Match)
	dest := runtime.DeepCopyJSON(canary)
	dest["weight"] = int64(100)
	out["route"] = []any{dest}
	return out
}

// mirrorRoute is the managed route that serves the requests of the owner's
// route hr that also match m as hr does, mirroring m.Percent percent of
// them to the canary.
func mirrorRoute(hr, canary map[string]any, m traffic.MirrorRoute, i int) map[string]any {
	out := derived(hr, fmt.Sprintf("%smirror-%s-%d", managedPrefix, m.Name, i), m.Match)
	out["route"] = runtime.DeepCopyJSONValue(hr["route"])
	mirror, _ := runtime.DeepCopyJSONValue(canary["destination"]).(map[string]any)
	out["mirror"] = mirror
	out["mirrorPercentage"] = map[string]any{"value": int64(m.Percent)}
	return out
}

// derived is a copy of the owner's route hr, named name, with the headers
// added to its matches, without its destinations and mirrors.
func derived(hr map[string]any, name string, headers []traffic.HeaderMatch) map[string]any {
	out := runtime.DeepCopyJSON(hr)
	for _, k := range []string{"route", "mirror", "mirrors", "mirrorPercentage", "mirrorPercent", "mirror_percent"} {
		delete(out, k)
	}
	out["name"] = name
	matches, _ := hr["match"].([]any)
	if m := withHeaders(matches, headers); m != nil {
		out["match"] = m
	} else {
		delete(out, "match")
	}
	return out
}

// withHeaders is matches with every header condition added to each (one
// match of only the headers when there are none; none for none).
func withHeaders(matches []any, headers []traffic.HeaderMatch) []any {
	hs := map[string]any{}
	for _, h := range headers {
		name := strings.ToLower(h.Name) // Istio wants lower-case header names
		switch {
		case h.Regex != "" && name == "cookie":
			// Envoy matches a regex against the whole value; a cookie is
			// one of several in the header.
			hs[name] = map[string]any{"regex": ".*(?:" + h.Regex + ").*"}
		case h.Regex != "":
			hs[name] = map[string]any{"regex": h.Regex}
		default:
			hs[name] = map[string]any{"exact": h.Exact}
		}
	}
	if len(matches) == 0 {
		if len(hs) == 0 {
			return nil
		}
		return []any{map[string]any{"headers": hs}}
	}
	out := make([]any, len(matches))
	for i, x := range matches {
		m, _ := runtime.DeepCopyJSONValue(x).(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		if len(hs) > 0 {
			merged, _ := m["headers"].(map[string]any)
			if merged == nil {
				merged = map[string]any{}
			}
			maps.Copy(merged, runtime.DeepCopyJSON(hs))
			m["headers"] = merged
		}
		out[i] = m
	}
	return out
}

func routeName(hr map[string]any) string {
	n, _ := hr["name"].(string)
	return n
}

func isManaged(hr map[string]any) bool { return strings.HasPrefix(routeName(hr), managedPrefix) }

// observedName turns a managed route's name, "drover-header-<name>-<i>",
// into "header/<name>".
func observedName(route string) string {
	rest := strings.TrimPrefix(route, managedPrefix)
	if i := strings.LastIndex(rest, "-"); i > 0 {
		rest = rest[:i]
	}
	kind, name, _ := strings.Cut(rest, "-")
	return kind + "/" + name
}

// applySubsets sets the labels of the DestinationRule's stable and canary
// subsets to their Services' selectors, adding missing subsets.
func (r *Router) applySubsets(ctx context.Context, dr *unstructured.Unstructured) error {
	want, err := r.subsetLabels(ctx)
	if err != nil {
		return err
	}
	raw, _, err := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	if err != nil {
		return fmt.Errorf("DestinationRule %s: spec.subsets: %w", r.dr.Name, err)
	}
	for _, name := range []string{r.dr.StableSubset, r.dr.CanarySubset} {
		i := slices.IndexFunc(raw, func(x any) bool { m, _ := x.(map[string]any); return m["name"] == name })
		if i < 0 {
			raw = append(raw, map[string]any{"name": name})
			i = len(raw) - 1
		}
		s, ok := raw[i].(map[string]any)
		if !ok {
			return fmt.Errorf("DestinationRule %s: subset %s is not an object", r.dr.Name, name)
		}
		s["labels"] = want[name]
	}
	return unstructured.SetNestedSlice(dr.Object, raw, "spec", "subsets")
}

// subsetLabels are the labels the stable and canary subsets must have:
// their Services' selectors.
func (r *Router) subsetLabels(ctx context.Context) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	for subset, svc := range map[string]string{r.dr.StableSubset: r.svcs.Stable, r.dr.CanarySubset: r.svcs.Canary} {
		var s corev1.Service
		if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: svc}, &s); err != nil {
			return nil, fmt.Errorf("reading service %s for subset %s: %w", svc, subset, err)
		}
		if len(s.Spec.Selector) == 0 {
			return nil, fmt.Errorf("service %s has no selector for subset %s to copy", svc, subset)
		}
		labels := map[string]any{}
		for k, v := range s.Spec.Selector {
			labels[k] = v
		}
		out[subset] = labels
	}
	return out, nil
}

// Observe implements traffic.Router: the canary's share in the first
// managed route, the managed routes present; verified when every managed
// route carries the same share, the subsets select what their Services
// select, and Istio has observed the objects' generations where it
// reports them (status.observedGeneration is optional: without it the
// objects count as observed).
func (r *Router) Observe(ctx context.Context) (traffic.Observed, error) {
	var out traffic.Observed
	verified := true
	if r.dr != nil {
		dr, err := r.get(ctx, DestinationRuleGVK, r.dr.Name)
		if err != nil {
			return out, err
		}
		want := dr.DeepCopy()
		if err := r.applySubsets(ctx, want); err != nil {
			return out, err
		}
		verified = sameJSON(dr.Object, want.Object) && generationObserved(dr)
	}
	vs, err := r.get(ctx, VirtualServiceGVK, r.vs)
	if err != nil {
		return out, err
	}
	httpRoutes, err := r.httpRoutes(vs)
	if err != nil {
		return out, err
	}
	seen := false
	names := map[string]bool{}
	for _, hr := range httpRoutes {
		if isManaged(hr) {
			names[observedName(routeName(hr))] = true
			continue
		}
		ok, err := r.selected(hr)
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		stable, canary, _ := r.find(hr)
		w := share(stable, canary)
		if !seen {
			out.Weight, seen = w, true
		}
		verified = verified && w == out.Weight
	}
	if !seen {
		return out, r.noRoute()
	}
	for n := range names {
		out.Routes = append(out.Routes, n)
	}
	slices.Sort(out.Routes)
	out.Verified = verified && generationObserved(vs)
	return out, nil
}

// share is the canary's percentage of the two destinations' weights. A
// destination alone takes all the traffic whatever its weight; beside
// others an unset weight is 0.
func share(stable, canary map[string]any) int32 {
	switch {
	case canary == nil:
		return 0
	case stable == nil:
		return 100
	}
	s, c := number(stable["weight"]), number(canary["weight"])
	if s+c == 0 {
		return 0
	}
	return int32(c * 100 / (s + c))
}

// number reads a JSON number (or a number in a string, as protobuf's JSON
// writes int64s); 0 when absent or unreadable.
func number(x any) int64 {
	switch v := x.(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int:
		return int64(v)
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// generationObserved reports whether Istio has observed the object's
// current generation, when its status says (Istio writes status only when
// its status reporting is on).
func generationObserved(u *unstructured.Unstructured) bool {
	x, found, _ := unstructured.NestedFieldNoCopy(u.Object, "status", "observedGeneration")
	if !found || x == nil {
		return true
	}
	return number(x) == u.GetGeneration()
}

// sameJSON reports whether a and b encode to the same JSON (numbers read
// back from the API and numbers written by the router differ in Go type).
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errors.Join(errA, errB) == nil && string(ja) == string(jb)
}
