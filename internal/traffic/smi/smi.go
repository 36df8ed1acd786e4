// Package smi shifts a Rollout's traffic with an SMI TrafficSplit
// (split.smi-spec.io/v1alpha3), read and written as an unstructured object
// so that Drover needs no SMI Go dependency. The Rollout creates and owns
// the TrafficSplit: its root Service and its two backends, the stable and
// canary Services weighted 100-w and w. SMI has no header or mirror
// routes, and no status: a weight counts as verified once the
// TrafficSplit carries it.
package smi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/traffic"
)

// TrafficSplitGVK is the kind the router writes.
var TrafficSplitGVK = schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha3", Kind: "TrafficSplit"}

const errRoutes = "setHeaderRoute and setMirrorRoute are not supported by SMI (a TrafficSplit only weighs backends)"

// Router is the SMI router of one Rollout.
type Router struct {
	client  client.Client
	reader  client.Reader
	svcs    traffic.Services
	name    string
	root    string
	rollout string
	owner   metav1.OwnerReference
}

// New returns a router over the TrafficSplit name of svcs.Namespace, which
// splits the traffic of rootService and is owned by owner (the Rollout
// rollout). It is read with reader (uncached) and written with c.
func New(c client.Client, reader client.Reader, svcs traffic.Services, name, rootService, rollout string, owner metav1.OwnerReference) *Router {
	return &Router{client: c, reader: reader, svcs: svcs, name: name, root: rootService, rollout: rollout, owner: owner}
}

// Name implements traffic.Router.
func (r *Router) Name() string { return "smi" }

func (r *Router) get(ctx context.Context) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(TrafficSplitGVK)
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: r.name}, u); err != nil {
		return nil, err
	}
	return u, nil
}

// Apply implements traffic.Router: the TrafficSplit is created, or its
// root Service and backends rewritten, to carry state.Weight.
func (r *Router) Apply(ctx context.Context, state traffic.State) error {
	if len(state.HeaderRoutes)+len(state.MirrorRoutes) > 0 {
		return errors.New(errRoutes)
	}
	backends := []any{
		map[string]any{"service": r.svcs.Stable, "weight": int64(100 - state.Weight)},
		map[string]any{"service": r.svcs.Canary, "weight": int64(state.Weight)},
	}
	cur, err := r.get(ctx)
	switch {
	case apierrors.IsNotFound(err):
		ts := &unstructured.Unstructured{}
		ts.SetGroupVersionKind(TrafficSplitGVK)
		ts.SetNamespace(r.svcs.Namespace)
		ts.SetName(r.name)
		ts.SetLabels(map[string]string{rolloutsv1alpha1.LabelRollout: r.rollout})
		ts.SetOwnerReferences([]metav1.OwnerReference{r.owner})
		ts.Object["spec"] = map[string]any{"service": r.root, "backends": backends}
		if err := r.client.Create(ctx, ts); err != nil {
			return fmt.Errorf("creating TrafficSplit %s: %w", r.name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading TrafficSplit %s: %w", r.name, err)
	}
	if !r.owns(cur) {
		return fmt.Errorf("TrafficSplit %s exists and is not owned by rollout %s", r.name, r.rollout)
	}
	patched := cur.DeepCopy()
	spec, _, _ := unstructured.NestedMap(patched.Object, "spec")
	if spec == nil {
		spec = map[string]any{}
	}
	spec["service"], spec["backends"] = r.root, backends
	patched.Object["spec"] = spec
	labels := maps.Clone(patched.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	labels[rolloutsv1alpha1.LabelRollout] = r.rollout
	patched.SetLabels(labels)
	if sameJSON(cur.Object, patched.Object) {
		return nil
	}
	if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(cur, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("updating TrafficSplit %s: %w", r.name, err)
	}
	return nil
}

// owns reports whether the TrafficSplit is this Rollout's.
func (r *Router) owns(u *unstructured.Unstructured) bool {
	for _, o := range u.GetOwnerReferences() {
		if o.UID == r.owner.UID {
			return true
		}
	}
	return false
}

// Observe implements traffic.Router: the canary's share of the two
// backends' weights. Before the first Apply there is no TrafficSplit:
// weight 0, unverified (the mesh sends the root Service's traffic to
// every pod behind it).
func (r *Router) Observe(ctx context.Context) (traffic.Observed, error) {
	var out traffic.Observed
	ts, err := r.get(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return out, nil
	case err != nil:
		return out, fmt.Errorf("reading TrafficSplit %s: %w", r.name, err)
	}
	backends, _, err := unstructured.NestedSlice(ts.Object, "spec", "backends")
	if err != nil {
		return out, fmt.Errorf("TrafficSplit %s: spec.backends: %w", r.name, err)
	}
	var stable, canary int64
	found := false
	for _, x := range backends {
		b, _ := x.(map[string]any)
		switch b["service"] {
		case r.svcs.Stable:
			stable, found = number(b["weight"]), true
		case r.svcs.Canary:
			canary, found = number(b["weight"]), true
		}
	}
	if !found {
		return out, fmt.Errorf("TrafficSplit %s: no backend is service %s or %s", r.name, r.svcs.Stable, r.svcs.Canary)
	}
	if stable+canary > 0 {
		out.Weight = int32(canary * 100 / (stable + canary))
	}
	root, _, _ := unstructured.NestedString(ts.Object, "spec", "service")
	out.Verified = root == r.root && r.owns(ts)
	return out, nil
}

func number(x any) int64 {
	switch v := x.(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	case int:
		return int64(v)
	}
	return 0
}

// sameJSON reports whether a and b encode to the same JSON.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errors.Join(errA, errB) == nil && string(ja) == string(jb)
}
